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

    /// Starts `transport` on `port`.
    pub fn start_on(transport: &str, port: u16) -> HttpServer {
        let mut child = Command::new("node")
            .arg(server_script("server-everything"))
            .arg(transport)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        loop {
            let line = lines
                .next()
                .expect("the server logs before exiting")
                .expect("a line");
            if line.contains("listening on port") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
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
