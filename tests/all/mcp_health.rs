//! Keeping clients connected: a killed stdio server comes back, a restarted HTTP server is
//! reconnected, permanent failures are not retried.

use std::process::Command;
use std::sync::Arc;

use codemode::config::Config;
use codemode::executor::{ToolDispatcher, ToolError};
use codemode::mcp::{ClientState, McpManager};
use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;

use crate::support::HttpServer;
use crate::support::Managed;
use crate::support::stdio_client;

/// A manager whose health checks and retries run fast enough for tests.
async fn manager(clients: Vec<Value>, max_tries: u32) -> Managed {
    let config = json!({"mcp": {
        "client_configs": clients,
        "tool_manager_config": {
            "health_check_interval_ms": 50,
            "connect_retry": {"max_tries": max_tries, "initial_backoff_ms": 20, "max_backoff_ms": 100}
        }
    }});
    Managed::new(McpManager::start(&Config::parse(&config.to_string()).expect("valid").mcp).await)
}

/// Waits for `client` to reach `state`, by its events.
async fn wait_for(
    events: &mut Receiver<codemode::mcp::ClientEvent>,
    client: &str,
    state: ClientState,
) {
    loop {
        let event = events.recv().await.expect("the manager is alive");
        if event.client == client && event.state == state {
            return;
        }
    }
}

#[tokio::test]
async fn a_killed_stdio_server_is_restarted_and_the_next_call_works() {
    let manager = Arc::new(
        manager(
            vec![stdio_client(
                "everything",
                "server-everything",
                &["stdio"],
                &[],
            )],
            5,
        )
        .await,
    );
    let mut events = manager.subscribe();
    let before = manager.status().await.remove(0);
    assert_eq!(before.state, ClientState::Connected);
    let pid = before.pid.expect("a stdio client has a pid");

    let in_flight = {
        let manager = Arc::clone(&manager);
        tokio::spawn(async move {
            manager
                .call(
                    "everything",
                    "trigger-long-running-operation",
                    json!({"duration": 30, "steps": 3}),
                )
                .await
        })
    };
    // The call is in flight once the server has it; killing now cuts it.
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let failed = in_flight.await.expect("joined");
    assert!(
        matches!(failed, Err(ToolError::Unavailable(_))),
        "{failed:?}"
    );

    wait_for(&mut events, "everything", ClientState::Disconnected).await;
    wait_for(&mut events, "everything", ClientState::Connected).await;
    let after = manager.status().await.remove(0);
    assert_ne!(after.pid, Some(pid), "a new server process");
    assert_eq!(
        manager
            .call("everything", "echo", json!({"message": "again"}))
            .await,
        Ok(json!("Echo: again"))
    );
}

#[tokio::test]
async fn a_restarted_http_server_gets_a_new_session() {
    let server = HttpServer::start("streamableHttp");
    let port = server.port;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let client = json!({"name": "remote", "connection_type": "http", "connection_string": url});
    let manager = manager(vec![client], 1000).await;
    let mut events = manager.subscribe();
    assert_eq!(manager.status().await[0].state, ClientState::Connected);

    drop(server);
    wait_for(&mut events, "remote", ClientState::Disconnected).await;
    wait_for(&mut events, "remote", ClientState::Error).await;
    let _restarted = HttpServer::start_on("streamableHttp", port);
    wait_for(&mut events, "remote", ClientState::Connected).await;
    assert_eq!(
        manager
            .call("remote", "echo", json!({"message": "back"}))
            .await,
        Ok(json!("Echo: back"))
    );
}

#[tokio::test]
async fn permanent_failures_are_not_retried_and_transient_ones_are() {
    let missing = json!({"name": "missing", "connection_type": "stdio", "stdio_config": {"command": "/nonexistent/server"}});
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let refused = json!({"name": "refused", "connection_type": "http", "connection_string": format!("http://127.0.0.1:{closed_port}/mcp")});
    let manager = manager(vec![missing, refused], 3).await;
    let mut events = manager.subscribe();
    // `refused` fails three times in all, then gives up.
    loop {
        let status = manager.status().await;
        let refused = status.iter().find(|s| s.name == "refused").expect("listed");
        if refused.failed_attempts == 3 {
            break;
        }
        wait_for(&mut events, "refused", ClientState::Error).await;
    }
    let status = manager.status().await;
    let missing = status.iter().find(|s| s.name == "missing").expect("listed");
    assert_eq!(
        (missing.state, missing.failed_attempts),
        (ClientState::Error, 1)
    );
}

/// A loopback server that answers every request to `/<status>` with that HTTP status.
async fn refusing_server() -> u16 {
    use axum::extract::Path;
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/{status}",
        axum::routing::any(|Path(status): Path<u16>| async move {
            StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test]
async fn http_refusals_are_permanent_by_status_and_unavailability_is_retried() {
    let port = refusing_server().await;
    let client = |status: u16, transport: &str| {
        json!({"name": format!("{transport}_{status}"), "connection_type": transport,
            "connection_string": format!("http://127.0.0.1:{port}/{status}")})
    };
    let mut clients = Vec::new();
    for status in [401, 403, 404, 405, 503] {
        clients.push(client(status, "http"));
        clients.push(client(status, "sse"));
    }
    let manager = manager(clients, 3).await;
    let mut events = manager.subscribe();
    // The unavailable servers fail three times in all, then give up.
    for name in ["http_503", "sse_503"] {
        while manager
            .status()
            .await
            .iter()
            .any(|s| s.name == name && s.failed_attempts < 3)
        {
            wait_for(&mut events, name, ClientState::Error).await;
        }
    }
    for status in manager.status().await {
        let expected = if status.name.ends_with("503") { 3 } else { 1 };
        assert_eq!(
            (status.state, status.failed_attempts),
            (ClientState::Error, expected),
            "{}: {:?}",
            status.name,
            status.last_error
        );
    }
}
