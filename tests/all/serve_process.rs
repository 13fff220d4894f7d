//! `codemode serve` as a process: clients added through the API survive `kill -9`, and SIGTERM
//! shuts it down cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::support::stdio_client;

/// A running `codemode serve` and its address.
struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start(db: &Path) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_codemode"))
            .args(["serve", "--port", "0", "--log-json", "--db"])
            .arg(db)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("codemode serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let address = loop {
            let line = lines
                .next()
                .expect("the service logs before exiting")
                .expect("a line");
            let Ok(log) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if log["fields"]["message"] == "codemode is listening" {
                break log["fields"]["address"]
                    .as_str()
                    .expect("an address")
                    .to_string();
            }
        };
        // Keep draining the logs so the service never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Service {
            child,
            base: format!("http://{address}"),
        }
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON")
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn clients_added_through_the_api_survive_kill_9() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("codemode.db");
    let mut service = Service::start(&db);
    let (status, body) = service
        .post(
            "/api/mcp/client",
            stdio_client("everything", "server-everything", &["stdio"], &[]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    service.child.kill().expect("kill -9");
    service.child.wait().expect("reaped");

    let service = Service::start(&db);
    let clients = service.get("/api/mcp/clients").await;
    assert_eq!(clients[0]["name"], "everything", "{clients}");
    assert_eq!(clients[0]["state"], "connected", "{clients}");
    let call = json!({"id": "1", "type": "function", "function": {"name": "everything-echo", "arguments": "{\"message\": \"back\"}"}});
    let (status, body) = service.post("/v1/mcp/tool/execute", call).await;
    assert_eq!(
        (status, body["content"].clone()),
        (200, json!("Echo: back"))
    );
}

#[tokio::test]
async fn sigterm_stops_the_service_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let mut service = Service::start(&dir.path().join("codemode.db"));
    let (status, _) = service
        .post(
            "/api/mcp/client",
            stdio_client("everything", "server-everything", &["stdio"], &[]),
        )
        .await;
    assert_eq!(status, 200);
    let pid = service.child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let exit = service.child.wait().expect("exits");
    assert_eq!(exit.code(), Some(0), "{exit:?}");
}
