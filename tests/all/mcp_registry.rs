//! The registry: full tool definitions, the OpenAI-style list, tools that change at run time,
//! in-process tools, and servers written with the official Python SDK (PyPI `mcp-server-time`).

use std::sync::Arc;

use axum::http::StatusCode;
use codemode::config::ToolManagerConfig;
use codemode::executor::{Limits, ToolDispatcher, ToolError};
use codemode::mcp::{ClientState, InProcessTool, McpManager};
use codemode::server::router;
use serde_json::{Value, json};

use crate::support::{app_state, call};
use crate::support::{manager, python_client, stdio_client};
use crate::support::{open_calls, run_with};

#[tokio::test]
async fn the_registry_has_full_definitions_and_openai_names() {
    let mut everything = stdio_client("everything", "server-everything", &["stdio"], &[]);
    everything["tools_to_skip"] = json!(["echo"]);
    let manager = manager(vec![everything]).await;
    let registry = manager.tools().await;
    assert_eq!(registry.len(), 1);
    let tools = &registry[0].tools;
    assert!(tools.iter().all(|t| t.name != "echo"), "echo is skipped");
    let structured = tools
        .iter()
        .find(|t| t.name == "get-structured-content")
        .expect("get-structured-content is listed");
    assert!(
        structured.output_schema.is_some(),
        "its outputSchema is kept"
    );
    let sum = tools.iter().find(|t| t.name == "get-sum").expect("get-sum");
    assert_eq!(sum.input_schema["required"], json!(["a", "b"]));

    let openai = codemode::mcp::tools::openai_tools(&registry);
    let names: Vec<&str> = openai
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(names.contains(&"everything-get-sum"), "{names:?}");
    assert!(!names.contains(&"everything-echo"), "{names:?}");
    let function = openai
        .iter()
        .find(|t| t["function"]["name"] == "everything-get-sum")
        .expect("listed");
    assert_eq!(function["type"], "function");
    assert_eq!(
        function["function"]["parameters"]["properties"]["a"]["type"],
        "number"
    );
}

#[tokio::test]
async fn a_tool_list_change_is_followed_without_reconnecting() {
    let manager = manager(vec![python_client(
        "changing",
        &["tests/servers/python/changing_tools.py"],
    )])
    .await;
    let status = manager.status().await;
    assert_eq!(
        status[0].state,
        ClientState::Connected,
        "{:?}",
        status[0].last_error
    );
    assert_eq!(status[0].tools, vec!["unlock"]);
    let pid = status[0].pid;

    let mut events = manager.subscribe();
    let answer = manager.call("changing", "unlock", json!({})).await;
    // The Python SDK wraps a returned str as structuredContent {"result": ...}.
    assert_eq!(answer, Ok(json!({"result": "added secret"})));
    // The server's notifications/tools/list_changed makes the manager re-list (the periodic
    // health check is 10 s away) and report the change.
    let event = events.recv().await.expect("an event");
    assert_eq!(event.client, "changing");
    assert_eq!(event.state, ClientState::Connected);
    let status = manager.status().await;
    assert_eq!(status[0].tools, vec!["unlock", "secret"]);
    assert_eq!(status[0].pid, pid, "the same session");
    assert_eq!(
        manager.call("changing", "secret", json!({})).await,
        Ok(json!({"result": "unlocked"}))
    );
}

#[tokio::test]
async fn mcp_server_time_from_pypi_is_called() {
    let manager = manager(vec![python_client(
        "time",
        &["-m", "mcp_server_time", "--local-timezone", "UTC"],
    )])
    .await;
    let status = manager.status().await;
    assert_eq!(
        status[0].state,
        ClientState::Connected,
        "{:?}",
        status[0].last_error
    );
    assert_eq!(status[0].tools, vec!["get_current_time", "convert_time"]);
    let now = manager
        .call(
            "time",
            "get_current_time",
            json!({"timezone": "Asia/Tokyo"}),
        )
        .await
        .expect("the current time");
    assert_eq!(now["timezone"], "Asia/Tokyo");
    let converted = manager
        .call(
            "time",
            "convert_time",
            json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Kolkata"}),
        )
        .await
        .expect("a conversion");
    assert!(
        converted["target"]["datetime"]
            .as_str()
            .is_some_and(|t| t.contains("T17:30:00")),
        "{converted}"
    );
    let bad = manager
        .call(
            "time",
            "get_current_time",
            json!({"timezone": "Mars/Olympus"}),
        )
        .await;
    assert!(matches!(bad, Err(ToolError::Failed(_))), "{bad:?}");
}

fn adder() -> InProcessTool {
    InProcessTool::new(
        "add",
        "Adds two integers.",
        json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
        |arguments: Value| async move {
            match (arguments["a"].as_i64(), arguments["b"].as_i64()) {
                (Some(a), Some(b)) => Ok(json!(a + b)),
                _ => Err(ToolError::InvalidArguments(
                    "a and b must be integers".into(),
                )),
            }
        },
    )
}

/// A manager with the in-process client `local` (its one tool: `add`).
async fn local_adder() -> Arc<McpManager> {
    let manager = Arc::new(McpManager::new(ToolManagerConfig::default()));
    manager
        .add_in_process("local", vec![adder()])
        .await
        .expect("registered");
    manager
}

#[tokio::test]
async fn in_process_tools_register_as_a_connected_client_once() {
    let manager = Arc::new(McpManager::new(ToolManagerConfig::default()));
    let status = manager
        .add_in_process("local", vec![adder()])
        .await
        .expect("registered");
    assert_eq!(status.state, ClientState::Connected);
    assert_eq!(status.tools, vec!["add"]);
    assert!(
        manager.add_in_process("local", vec![]).await.is_err(),
        "duplicate"
    );
    assert!(
        manager.add_in_process("1x", vec![]).await.is_err(),
        "bad name"
    );
}

#[tokio::test]
async fn in_process_tools_are_called_from_scripts() {
    let manager = local_adder().await;
    let result = run_with(
        "import codemode\nresult = codemode.call_tool('local', 'add', a=40, b=2)\n\
         try:\n    codemode.call_tool('local', 'add', a='x', b=2)\nexcept TypeError as e:\n    error = str(e)\n\
         result = [result, error]",
        Limits::DEFAULT,
        open_calls(&manager),
    )
    .await;
    assert!(result.ok, "{:#?}", result.error);
    assert_eq!(result.result, json!([42, "a and b must be integers"]));
}

#[tokio::test]
async fn in_process_tools_are_listed_and_called_over_http() {
    let manager = local_adder().await;
    let app = router(Arc::new(app_state(Arc::clone(&manager)).await));
    let (status, tools) = call(&app, "GET", "/v1/mcp/tools", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tools["tools"][0]["function"]["name"], "local-add");
    let (status, body) = call(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        json!({"id": "c1", "type": "function", "function": {"name": "local-add", "arguments": "{\"a\": 1, \"b\": 2}"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["content"], "3");
}

#[tokio::test]
async fn in_process_tool_lists_apply_and_their_type_cannot_change() {
    let manager = local_adder().await;
    let app = router(Arc::new(app_state(Arc::clone(&manager)).await));
    // Tool lists apply to in-process clients too; their connection type cannot change.
    let (status, body) = call(
        &app,
        "PUT",
        "/api/mcp/client/local",
        json!({"name": "local", "connection_type": "inprocess", "tools_to_execute": []}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        open_calls(&manager)
            .call("local", "add", json!({"a": 1, "b": 1}))
            .await,
        Err(ToolError::Denied(
            "local.add is not allowed by the client's configuration".into()
        ))
    );
    let (status, _) = call(
        &app,
        "PUT",
        "/api/mcp/client/local",
        json!({"name": "local", "connection_type": "stdio", "stdio_config": {"command": "x"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = call(
        &app,
        "POST",
        "/api/mcp/client",
        json!({"name": "other", "connection_type": "inprocess"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
