//! Gateway overhead (issue 3): one `echo` call to server-everything over stdio, made directly with
//! an rmcp client, through codemode's manager in the same process, through codemode's
//! `POST /v1/mcp/tool/execute` (HTTP on loopback, the manager, the same kind of stdio session
//! behind it), and through codemode's `/mcp` with an rmcp streamable-HTTP client (issue 6): rmcp's
//! default client, which opens a connection per request, and the same transport over a pooling
//! client. Needs `npm ci --prefix tests/servers`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::sync::Arc;

use codemode::app::App;
use codemode::config::Config;
use codemode::executor::{Executor, ExecutorConfig};
use codemode::mcp::McpManager;
use codemode::policy::Permit;
use codemode::server::serve;
use criterion::{Criterion, criterion_group, criterion_main};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;

fn server_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
        .display()
        .to_string()
}

/// `tool` (echo, under whatever name the client knows it) with the bench's message.
fn echo_params(tool: &'static str) -> CallToolRequestParams {
    let arguments = json!({"message": "hi"});
    CallToolRequestParams::new(tool).with_arguments(arguments.as_object().cloned().expect("object"))
}

fn gateway(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let direct = runtime.block_on(async {
        let mut command = tokio::process::Command::new("node");
        command.args([server_script(), "stdio".into()]);
        ().serve(TokioChildProcess::new(command).expect("spawn"))
            .await
            .expect("session")
    });

    let (base, calls) = runtime.block_on(async {
        let config = json!({"mcp": {"client_configs": [{"name": "everything", "connection_type": "stdio",
            "stdio_config": {"command": "node", "args": [server_script(), "stdio"]}}]}});
        let config = Config::parse(&config.to_string()).expect("config");
        let manager = Arc::new(McpManager::start(&config.mcp).await);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let executor = Executor::new(ExecutorConfig::default()).expect("sandbox");
        let state = Arc::new(
            App::assemble(&Config::default(), Arc::clone(&manager), executor, None)
                .await
                .expect("state"),
        );
        let calls = state.gateway.script_calls(Permit::open());
        tokio::spawn(serve(listener, state, std::future::pending()));
        (base, calls)
    });
    // rmcp's default client opens a new connection for every request (it turns pooling off);
    // the pooled one is the same transport over a plain reqwest client that keeps them.
    let mcp_config = || {
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            format!("{base}/mcp"),
        )
    };
    let mcp_client = runtime.block_on(async {
        let transport = rmcp::transport::StreamableHttpClientTransport::from_config(mcp_config());
        ().serve(transport).await.expect("mcp session")
    });
    let mcp_pooled = runtime.block_on(async {
        let transport = rmcp::transport::StreamableHttpClientTransport::with_client(
            reqwest::Client::new(),
            mcp_config(),
        );
        ().serve(transport).await.expect("mcp session")
    });
    let http = reqwest::Client::new();
    let url = format!("{base}/v1/mcp/tool/execute");
    let body = json!({"id": "1", "type": "function", "function": {"name": "everything-echo", "arguments": "{\"message\": \"hi\"}"}});

    let mut group = c.benchmark_group("echo_call");
    group.bench_function("direct_rmcp", |b| {
        b.to_async(&runtime)
            .iter(|| async { direct.call_tool(echo_params("echo")).await.expect("echo") });
    });
    group.bench_function("via_manager", |b| {
        b.to_async(&runtime).iter(|| async {
            calls
                .call("everything", "echo", json!({"message": "hi"}))
                .await
                .expect("echo")
        });
    });
    for (name, client) in [
        ("via_codemode_mcp", &mcp_client),
        ("via_codemode_mcp_pooled", &mcp_pooled),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                client
                    .call_tool(echo_params("everything-echo"))
                    .await
                    .expect("echo")
            });
        });
    }
    group.bench_function("via_codemode_http", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = http.post(&url).json(&body).send().await.expect("POST");
            assert!(response.status().is_success());
            response.bytes().await.expect("body")
        });
    });
    group.finish();
}

criterion_group!(benches, gateway);
criterion_main!(benches);
