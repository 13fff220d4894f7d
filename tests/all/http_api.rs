//! The HTTP API, called through the router (no socket), against a real stdio MCP server.

use std::sync::Arc;

use axum::http::StatusCode;
use codemode::config::ToolManagerConfig;
use codemode::mcp::McpManager;
use codemode::server::router;
use serde_json::{Value, json};

use crate::support::{app_state, call, stdio_client};

async fn app() -> axum::Router {
    let manager = Arc::new(McpManager::new(ToolManagerConfig::default()));
    router(Arc::new(app_state(manager).await))
}

fn error_type(body: &Value) -> &str {
    body["error"]["type"].as_str().unwrap_or("<none>")
}

fn tool_call(name: &str, arguments: &str) -> Value {
    json!({"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}})
}

async fn app_with_everything() -> axum::Router {
    let app = app().await;
    let (status, body) = call(
        &app,
        "POST",
        "/api/mcp/client",
        stdio_client("everything", "server-everything", &["stdio"], &[]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "message": "MCP client added successfully"})
    );
    app
}

#[tokio::test]
async fn clients_are_added_listed_and_removed() {
    let app = app().await;
    assert_eq!(
        call(&app, "GET", "/api/mcp/clients", Value::Null).await,
        (StatusCode::OK, json!([]))
    );
    let client = stdio_client("everything", "server-everything", &["stdio"], &[]);
    assert_eq!(
        call(&app, "POST", "/api/mcp/client", client.clone())
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = call(&app, "POST", "/api/mcp/client", client).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::CONFLICT, "conflict")
    );
    let (_, clients) = call(&app, "GET", "/api/mcp/clients", Value::Null).await;
    assert_eq!(clients[0]["name"], "everything");
    assert_eq!(clients[0]["state"], "connected");
    assert!(
        clients[0]["tools"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("echo")))
    );
    assert_eq!(clients[0]["config"]["connection_type"], "stdio");
    assert_eq!(
        call(&app, "DELETE", "/api/mcp/client/everything", Value::Null)
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = call(&app, "DELETE", "/api/mcp/client/everything", Value::Null).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn a_bad_client_body_names_the_field() {
    let app = app().await;
    let (status, body) = call(
        &app,
        "POST",
        "/api/mcp/client",
        json!({"name": "bad name", "connection_type": "stdio", "stdio_config": {"command": "x"}}),
    )
    .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("name:")),
        "{body}"
    );
    let (status, body) = call(
        &app,
        "POST",
        "/api/mcp/client",
        json!({"name": "x", "connection_type": "carrier-pigeon"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("connection_type")),
        "{body}"
    );
}

#[tokio::test]
async fn a_client_that_cannot_connect_is_kept_in_error() {
    let app = app().await;
    let broken = json!({"name": "broken", "connection_type": "stdio", "stdio_config": {"command": "/nonexistent/server"}});
    let (status, body) = call(&app, "POST", "/api/mcp/client", broken).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::BAD_GATEWAY, "upstream_error")
    );
    let (_, clients) = call(&app, "GET", "/api/mcp/clients", Value::Null).await;
    assert_eq!(clients[0]["state"], "error");
    assert!(
        clients[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("/nonexistent/server"))
    );
    let (status, _) = call(
        &app,
        "POST",
        "/api/mcp/client/broken/reconnect",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (status, _) = call(
        &app,
        "POST",
        "/api/mcp/client/nobody/reconnect",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_tool_call_in_chat_and_responses_shape() {
    let app = app_with_everything().await;
    let (status, body) = call(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        tool_call("everything-echo", r#"{"message": "hi"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"role": "tool", "content": "Echo: hi", "tool_call_id": "call_1"})
    );
    let responses = json!({"type": "function_call", "call_id": "c9", "name": "everything-get-sum", "arguments": "{\"a\": 1, \"b\": 2}"});
    let (status, body) = call(
        &app,
        "POST",
        "/v1/mcp/tool/execute?format=responses",
        responses,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"type": "function_call_output", "call_id": "c9", "output": "The sum of 1 and 2 is 3."})
    );
}

#[tokio::test]
async fn each_tool_failure_has_its_own_error_type() {
    let app = app_with_everything().await;
    let cases = [
        (
            tool_call("everything-echo", "{not json"),
            StatusCode::BAD_REQUEST,
            "invalid_arguments",
        ),
        (
            tool_call("everything-nothing", "{}"),
            StatusCode::NOT_FOUND,
            "tool_not_found",
        ),
        (
            tool_call("nobody-echo", "{}"),
            StatusCode::NOT_FOUND,
            "tool_not_found",
        ),
        (
            tool_call("everything-get-sum", r#"{"a": "x"}"#),
            StatusCode::BAD_GATEWAY,
            "tool_error",
        ),
        (
            json!({"id": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (request, status, kind) in cases {
        let (got, body) = call(&app, "POST", "/v1/mcp/tool/execute", request.clone()).await;
        assert_eq!(
            (got, error_type(&body)),
            (status, kind),
            "{request} -> {body}"
        );
    }
    let (status, body) = call(
        &app,
        "POST",
        "/v1/mcp/tool/execute?format=xml",
        tool_call("everything-echo", "{}"),
    )
    .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

#[tokio::test]
async fn editing_tool_lists_applies_at_once() {
    let app = app_with_everything().await;
    let (status, body) = call(
        &app,
        "PUT",
        "/api/mcp/client/everything",
        json!({"tools_to_execute": ["echo"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "MCP client tools edited successfully");
    let (status, body) = call(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        tool_call("everything-get-sum", r#"{"a": 1, "b": 2}"#),
    )
    .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::FORBIDDEN, "tool_not_allowed")
    );
    let (_, clients) = call(&app, "GET", "/api/mcp/clients", Value::Null).await;
    assert_eq!(clients[0]["tools"], json!(["echo"]));
    let (status, _) = call(
        &app,
        "PUT",
        "/api/mcp/client/nobody",
        json!({"tools_to_execute": []}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        "PUT",
        "/api/mcp/client/everything",
        json!({"tools_to_execute": "echo"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn hyphenated_client_names_resolve_by_the_longest_match() {
    let app = app().await;
    for name in ["web", "web-search"] {
        let (status, body) = call(
            &app,
            "POST",
            "/api/mcp/client",
            stdio_client(name, "server-everything", &["stdio"], &[]),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = call(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        tool_call("web-search-echo", r#"{"message": "m"}"#),
    )
    .await;
    assert_eq!(
        (status, body["content"].clone()),
        (StatusCode::OK, json!("Echo: m"))
    );
    call(&app, "DELETE", "/api/mcp/client/web-search", Value::Null).await;
    // Now `web-search-echo` means client `web`, tool `search-echo`, which does not exist.
    let (status, body) = call(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        tool_call("web-search-echo", "{}"),
    )
    .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::NOT_FOUND, "tool_not_found")
    );
}

#[tokio::test]
async fn a_tool_over_its_time_limit_is_a_timeout() {
    let app = app().await;
    let mut client = stdio_client("slow", "server-everything", &["stdio"], &[]);
    client["tool_execution_timeout"] = json!(1);
    assert_eq!(
        call(&app, "POST", "/api/mcp/client", client).await.0,
        StatusCode::OK
    );
    let request = tool_call(
        "slow-trigger-long-running-operation",
        r#"{"duration": 10, "steps": 2}"#,
    );
    let (status, body) = call(&app, "POST", "/v1/mcp/tool/execute", request).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::GATEWAY_TIMEOUT, "tool_timeout")
    );
}

#[tokio::test]
async fn replacing_the_whole_configuration_reconnects() {
    let app = app_with_everything().await;
    let (_, before) = call(&app, "GET", "/api/mcp/clients", Value::Null).await;
    let mut replacement = stdio_client("everything", "server-everything", &["stdio"], &["HOME"]);
    replacement["tools_to_execute"] = json!(["get-env"]);
    let (status, body) = call(&app, "PUT", "/api/mcp/client/everything", replacement).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "MCP client updated successfully");
    let (_, after) = call(&app, "GET", "/api/mcp/clients", Value::Null).await;
    assert_ne!(before[0]["pid"], after[0]["pid"], "a new server process");
    assert_eq!(after[0]["tools"], json!(["get-env"]));
    let (status, body) = call(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        tool_call("everything-get-env", "{}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["content"]
            .as_str()
            .is_some_and(|env| env.contains("HOME")),
        "{body}"
    );
}
