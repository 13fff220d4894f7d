//! The MCP manager against server-everything over streamable HTTP on loopback.

use codemode::executor::ToolDispatcher;
use codemode::mcp::ClientState;
use serde_json::json;

use crate::support::{HttpServer, manager};

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
