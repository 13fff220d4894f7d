//! The MCP manager against real servers over stdio (npm packages installed in tests/servers).

use std::sync::Arc;

use codemode::executor::{Limits, ToolDispatcher, ToolError};
use codemode::mcp::ClientState;
use serde_json::json;

use crate::support::{manager, run_with, stdio_client};

#[tokio::test]
async fn server_everything_is_listed_and_called_over_stdio() {
    let manager = manager(vec![stdio_client(
        "everything",
        "server-everything",
        &["stdio"],
        &[],
    )])
    .await;
    let status = manager.status().await;
    assert_eq!(
        status[0].state,
        ClientState::Connected,
        "{:?}",
        status[0].last_error
    );
    for tool in ["echo", "get-sum", "get-structured-content"] {
        assert!(
            status[0].tools.iter().any(|t| t == tool),
            "{tool} in {:?}",
            status[0].tools
        );
    }
    let echo = manager
        .call("everything", "echo", json!({"message": "hi"}))
        .await;
    assert_eq!(echo, Ok(json!("Echo: hi")));
    let sum = manager
        .call("everything", "get-sum", json!({"a": 2, "b": 40}))
        .await;
    assert_eq!(sum, Ok(json!("The sum of 2 and 40 is 42.")));
    let weather = manager
        .call(
            "everything",
            "get-structured-content",
            json!({"location": "Chicago"}),
        )
        .await
        .expect("structured content");
    assert!(weather["temperature"].is_number(), "{weather}");
}

#[tokio::test]
async fn a_stdio_child_sees_only_path_and_the_variables_it_is_given() {
    let manager = manager(vec![stdio_client(
        "everything",
        "server-everything",
        &["stdio"],
        &["HOME", "CODEMODE_TEST=inline"],
    )])
    .await;
    let env = manager
        .call("everything", "get-env", json!({}))
        .await
        .expect("env");
    let mut names: Vec<&str> = env
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["CODEMODE_TEST", "HOME", "PATH"], "{env}");
    assert_eq!(env["CODEMODE_TEST"], "inline");
}

#[tokio::test]
async fn upstream_errors_and_unknown_tools_are_typed() {
    let manager = manager(vec![stdio_client(
        "everything",
        "server-everything",
        &["stdio"],
        &[],
    )])
    .await;
    let bad = manager
        .call("everything", "get-sum", json!({"a": "x"}))
        .await;
    assert!(matches!(bad, Err(ToolError::Failed(_))), "{bad:?}");
    let unknown = manager.call("everything", "no-such-tool", json!({})).await;
    assert!(
        matches!(unknown, Err(ToolError::NotFound(_))),
        "{unknown:?}"
    );
    let no_client = manager.call("nobody", "echo", json!({})).await;
    assert!(
        matches!(no_client, Err(ToolError::NotFound(_))),
        "{no_client:?}"
    );
}

#[tokio::test]
async fn tools_outside_tools_to_execute_are_denied() {
    let mut client = stdio_client("everything", "server-everything", &["stdio"], &[]);
    client["tools_to_execute"] = json!(["echo"]);
    let manager = manager(vec![client]).await;
    assert_eq!(manager.status().await[0].tools, ["echo"]);
    let denied = manager
        .call("everything", "get-sum", json!({"a": 1, "b": 2}))
        .await;
    assert!(matches!(denied, Err(ToolError::Denied(_))), "{denied:?}");
}

#[tokio::test]
async fn a_missing_command_puts_only_that_client_in_error() {
    let broken = json!({"name": "broken", "connection_type": "stdio", "stdio_config": {"command": "/nonexistent/mcp-server"}});
    let missing_env = json!({"name": "needs_env", "connection_type": "stdio",
        "stdio_config": {"command": "node", "envs": ["CODEMODE_SURELY_UNSET_VARIABLE"]}});
    let manager = manager(vec![
        broken,
        missing_env,
        stdio_client("everything", "server-everything", &["stdio"], &[]),
    ])
    .await;
    let status = manager.status().await;
    let by_name = |name: &str| status.iter().find(|s| s.name == name).expect("listed");
    assert_eq!(by_name("broken").state, ClientState::Error);
    assert!(
        by_name("broken")
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("/nonexistent/mcp-server"))
    );
    assert_eq!(by_name("needs_env").state, ClientState::Error);
    assert!(
        by_name("needs_env")
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("CODEMODE_SURELY_UNSET_VARIABLE"))
    );
    assert_eq!(by_name("everything").state, ClientState::Connected);
    let unavailable = manager.call("broken", "anything", json!({})).await;
    assert!(
        matches!(unavailable, Err(ToolError::Unavailable(_))),
        "{unavailable:?}"
    );
}

#[tokio::test]
async fn a_script_calls_filesystem_memory_and_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("notes.txt"), "hello from disk").expect("write");
    let root = dir.path().display().to_string();
    let manager = manager(vec![
        stdio_client("filesystem", "server-filesystem", &[&root], &[]),
        stdio_client("memory", "server-memory", &[], &[]),
        stdio_client("everything", "server-everything", &["stdio"], &[]),
    ])
    .await;
    let code = format!(
        "import codemode\n\
         text = codemode.call_tool('filesystem', 'read_text_file', path={:?})\n\
         codemode.call_tool('memory', 'create_entities', entities=[{{'name': 'note', 'entityType': 'file', 'observations': [str(text)]}}])\n\
         graph = codemode.call_tool('memory', 'read_graph')\n\
         total = codemode.call_tool('everything', 'get-sum', a=20, b=22)\n\
         result = {{'text': text, 'entities': [e['name'] for e in graph['entities']], 'sum': total}}",
        format!("{root}/notes.txt")
    );
    let result = run_with(&code, Limits::DEFAULT, Arc::new(manager)).await;
    assert!(result.ok, "{:#?}", result.error);
    assert_eq!(result.result["entities"], json!(["note"]));
    assert_eq!(result.result["sum"], "The sum of 20 and 22 is 42.");
    assert!(
        result.result["text"]
            .to_string()
            .contains("hello from disk"),
        "{}",
        result.result
    );
    assert_eq!(result.calls.len(), 4);
    assert!(result.calls.iter().all(|c| c.ok));
}
