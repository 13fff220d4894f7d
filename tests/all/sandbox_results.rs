//! What a run reports: result value, errors with the user's line numbers, output, records.

use serde_json::json;

use crate::support::{run, run_ok};

#[tokio::test]
async fn the_result_variable_is_the_result() {
    let result = run_ok("x = 20\nresult = {'answer': x * 2 + 2, 'items': (1, 2)}\nx + 1").await;
    assert_eq!(result.result, json!({"answer": 42, "items": [1, 2]}));
}

#[tokio::test]
async fn without_result_the_last_expression_is_the_result() {
    let result = run_ok("values = [3, 1, 2]\nsorted(values)").await;
    assert_eq!(result.result, json!([1, 2, 3]));
}

#[tokio::test]
async fn a_script_without_either_has_a_null_result() {
    let result = run_ok("x = 1\nprint(x)").await;
    assert_eq!(result.result, json!(null));
    assert_eq!(result.stdout, "1\n");
}

#[tokio::test]
async fn values_json_cannot_hold_are_converted_not_lost() {
    let result = run_ok(
        "class P:\n    def __repr__(self): return 'P()'\nresult = {'s': {1}, 'b': b'hi', 'p': P()}",
    )
    .await;
    assert_eq!(result.result, json!({"s": [1], "b": "hi", "p": "P()"}));
}

#[tokio::test]
async fn an_exception_reports_type_message_and_the_scripts_line() {
    let result = run("total = 0\nfor i in range(3):\n    total += i\nratio = total / 0\n").await;
    assert!(!result.ok);
    assert_eq!(result.result, json!(null));
    let error = result.error.expect("an error");
    assert_eq!(error.kind, "ZeroDivisionError");
    assert_eq!(error.message, "division by zero");
    assert_eq!(error.line, Some(4));
    assert!(
        error.traceback.contains("line 4"),
        "traceback: {}",
        error.traceback
    );
    assert!(
        error.traceback.contains("ratio = total / 0"),
        "traceback shows the source: {}",
        error.traceback
    );
    assert_eq!(error.limit, None);
}

#[tokio::test]
async fn an_error_inside_a_function_reports_the_raising_line() {
    let result = run("def f(d):\n    return d['k']\n\nf({})\n").await;
    let error = result.error.expect("an error");
    assert_eq!(error.kind, "KeyError");
    assert_eq!(error.line, Some(2));
}

#[tokio::test]
async fn a_syntax_error_reports_its_line() {
    let result = run("x = 1\ny = (2 +\nprint(x\n").await;
    let error = result.error.expect("an error");
    assert_eq!(error.kind, "SyntaxError");
    assert!(
        error.line.is_some_and(|l| (2..=4).contains(&l)),
        "line {:?}",
        error.line
    );
}

#[tokio::test]
async fn stderr_is_captured_apart_from_stdout() {
    let result = run_ok(
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.stderr.write('more\\n')",
    )
    .await;
    assert_eq!(result.stdout, "out\n");
    assert_eq!(result.stderr, "err\nmore\n");
}

#[tokio::test]
async fn output_before_an_error_is_kept() {
    let result = run("print('before')\nraise RuntimeError('stop')\n").await;
    assert_eq!(result.stdout, "before\n");
    assert_eq!(result.error.expect("an error").kind, "RuntimeError");
}

#[tokio::test]
async fn sys_exit_zero_is_success_and_nonzero_is_an_error() {
    assert!(run("import sys\nsys.exit(0)").await.ok);
    let failed = run("import sys\nsys.exit(3)").await;
    assert_eq!(failed.error.expect("an error").kind, "SystemExit");
}

#[tokio::test]
async fn an_empty_script_succeeds() {
    let result = run_ok("").await;
    assert_eq!(result.result, json!(null));
}

#[tokio::test]
async fn stats_report_time_and_memory() {
    let result = run_ok("data = list(range(200000))").await;
    assert!(result.stats.wall_ms > 0.0);
    assert!(
        result.stats.peak_memory_bytes > 16 << 20,
        "peak {}",
        result.stats.peak_memory_bytes
    );
}
