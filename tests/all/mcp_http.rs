//! The MCP manager against server-everything over streamable HTTP on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use codemode::executor::ToolDispatcher;
use codemode::mcp::ClientState;
use serde_json::json;

use crate::mcp_stdio::{manager, server_script};

/// server-everything serving one HTTP transport on a free loopback port.
pub struct HttpServer {
    child: Child,
    pub port: u16,
}

impl HttpServer {
    /// Starts `transport` (`streamableHttp` or `sse`) and returns once it listens.
    pub fn start(transport: &str) -> HttpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        HttpServer::start_on(transport, port)
    }

    /// Starts `transport` on `port` and returns once the server says it listens (the
    /// streamable-HTTP server says so on stderr, the SSE one on stdout).
    pub fn start_on(transport: &str, port: u16) -> HttpServer {
        let mut child = Command::new("node")
            .arg(server_script("server-everything"))
            .arg(transport)
            .env("PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts");
        let (lines, ready) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for output in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            });
        }
        drop(lines);
        loop {
            let line = ready.recv().expect("the server logs before exiting");
            if line.contains("listening on port") || line.contains("running on port") {
                break;
            }
        }
        HttpServer { child, port }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn server_everything_over_streamable_http() {
    let server = HttpServer::start("streamableHttp");
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let client = json!({"name": "remote", "connection_type": "http", "connection_string": url, "headers": {"X-Test": "yes"}});
    let manager = manager(vec![client]).await;
    let status = manager.status().await;
    assert_eq!(
        status[0].state,
        ClientState::Connected,
        "{:?}",
        status[0].last_error
    );
    assert_eq!(
        manager
            .call("remote", "echo", json!({"message": "over http"}))
            .await,
        Ok(json!("Echo: over http"))
    );
    let weather = manager
        .call(
            "remote",
            "get-structured-content",
            json!({"location": "New York"}),
        )
        .await;
    assert!(weather.is_ok_and(|w| w["humidity"].is_number()));
}

#[tokio::test]
async fn an_http_url_from_the_environment_that_is_unset_fails_only_its_client() {
    let client = json!({"name": "remote", "connection_type": "http", "connection_string": "env.CODEMODE_UNSET_MCP_URL"});
    let manager = manager(vec![client]).await;
    let status = manager.status().await;
    assert_eq!(status[0].state, ClientState::Error);
    assert!(
        status[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("CODEMODE_UNSET_MCP_URL"))
    );
}

#[tokio::test]
async fn server_everything_over_legacy_sse() {
    let server = HttpServer::start("sse");
    let url = format!("http://127.0.0.1:{}/sse", server.port);
    let manager = manager(vec![
        json!({"name": "legacy", "connection_type": "sse", "connection_string": url}),
    ])
    .await;
    let status = manager.status().await;
    assert_eq!(
        status[0].state,
        ClientState::Connected,
        "{:?}",
        status[0].last_error
    );
    assert!(
        status[0].tools.iter().any(|t| t == "get-sum"),
        "{:?}",
        status[0].tools
    );
    assert_eq!(
        manager
            .call("legacy", "echo", json!({"message": "sse"}))
            .await,
        Ok(json!("Echo: sse"))
    );
    assert_eq!(
        manager
            .call("legacy", "get-sum", json!({"a": 4, "b": 5}))
            .await,
        Ok(json!("The sum of 4 and 5 is 9."))
    );
    let weather = manager
        .call(
            "legacy",
            "get-structured-content",
            json!({"location": "Chicago"}),
        )
        .await;
    assert!(weather.is_ok_and(|w| w["conditions"].is_string()));
}
