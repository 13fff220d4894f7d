//! Python semantics: each `tests/cases/python/<name>.py` must print exactly `<name>.out`, which
//! is CPython's output for the same file.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::run;

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/python");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the cases directory exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "py"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 7,
        "expected the Python cases in {}",
        dir.display()
    );
    cases
}

fn expected(case: &Path) -> String {
    std::fs::read_to_string(case.with_extension("out")).expect("every case has an .out file")
}

#[tokio::test]
async fn every_case_prints_what_cpython_prints() {
    for case in cases() {
        let code = std::fs::read_to_string(&case).expect("readable case");
        let result = run(&code).await;
        assert!(result.ok, "{} failed: {:#?}", case.display(), result.error);
        assert_eq!(
            result.stdout,
            expected(&case),
            "stdout of {}",
            case.display()
        );
    }
}

/// Keeps the `.out` files honest: they are what CPython prints.
#[test]
fn expected_outputs_match_cpython() {
    for case in cases() {
        let output = Command::new("python3")
            .arg(&case)
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "CPython failed on {}",
            case.display()
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            expected(&case),
            "{}",
            case.display()
        );
    }
}
