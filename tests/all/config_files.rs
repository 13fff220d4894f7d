//! Every configuration example of Bifrost's MCP documentation is accepted unchanged: whole
//! documents as config files, single client objects as client definitions.

use std::path::Path;

use codemode::config::{ClientConfig, Config};

fn fixtures(prefix: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bifrost");
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).expect("readable"),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn bifrost_documents_are_valid_config_files() {
    let documents = fixtures("document-");
    assert!(documents.len() >= 5);
    for (name, text) in documents {
        if let Err(error) = Config::parse(&text) {
            panic!("{name}: {error}");
        }
    }
}

#[test]
fn bifrost_client_objects_are_valid_clients() {
    let clients = fixtures("client-");
    assert!(clients.len() >= 10);
    for (name, text) in clients {
        if let Err(error) = ClientConfig::parse(&text) {
            panic!("{name}: {error}");
        }
    }
}
