//! Permission and audit costs (issue 5).
//!
//! - `permit/allows`: one permit check for a key with rules on several clients.
//! - `host_call/1000_calls_*`: a script making 1,000 calls to an in-process tool through the
//!   gateway with an open permit and with a key's rules (no audit): the difference per call is
//!   the check's cost inside the host call (`_manager` keeps its name from before the gateway
//!   existed: it is the unrestricted path).
//! - `tool_execute/*`: `POST /v1/mcp/tool/execute` (router, no socket) to an in-process tool
//!   and to server-everything over stdio, with and without the audit log: its effect on
//!   throughput.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use codemode::app::App;
use codemode::code_mode::CodeMode;
use codemode::config::BindingLevel;
use codemode::config::{Config, GovernanceConfig, VirtualKeyClient, VirtualKeyConfig};
use codemode::executor::{Executor, ExecutorConfig, LimitOverrides, Limits, ToolDispatcher};
use codemode::gateway::Gateway;
use codemode::mcp::{InProcessTool, McpManager};
use codemode::policy::{KeyRing, Permit};
use codemode::server::router;
use codemode::store::Store;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The permit of a key with rules on eleven clients.
async fn rules() -> Permit {
    let clients: Vec<VirtualKeyClient> = (0..10)
        .map(|i| VirtualKeyClient {
            mcp_client_name: format!("client{i}"),
            tools_to_execute: (0..20).map(|t| format!("tool{t}")).collect(),
        })
        .chain([VirtualKeyClient {
            mcp_client_name: "local".into(),
            tools_to_execute: vec!["echo".into()],
        }])
        .collect();
    let key = VirtualKeyConfig {
        id: None,
        name: "bench".into(),
        value: "bench-key".into(),
        description: None,
        is_active: true,
        mcp_configs: clients,
        provider_configs: Vec::new(),
    };
    let governance = GovernanceConfig {
        virtual_keys: vec![key],
        ..GovernanceConfig::default()
    };
    let ring = KeyRing::load(&governance, None).await.expect("keys");
    ring.authenticate(Some("bench-key")).expect("the key")
}

fn echo() -> InProcessTool {
    InProcessTool::new(
        "echo",
        "Echoes.",
        json!({"type": "object"}),
        |arguments: Value| async move { Ok(arguments) },
    )
}

fn policy(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let permit = runtime.block_on(rules());
    c.bench_function("permit/allows", |b| {
        b.iter(|| std::hint::black_box(permit.allows("client7", "tool13")))
    });

    let manager = runtime.block_on(async {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "tests/servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
        );
        let config = json!({"mcp": {"client_configs": [{"name": "everything", "connection_type": "stdio",
            "stdio_config": {"command": "node", "args": [script.display().to_string(), "stdio"]}}]}});
        let config = Config::parse(&config.to_string()).expect("config");
        let manager = Arc::new(McpManager::start(&config.mcp).await);
        manager
            .add_in_process("local", vec![echo()])
            .await
            .expect("in-process");
        manager
    });
    let executor = Executor::new(ExecutorConfig::default()).expect("sandbox");
    let script =
        "import codemode\nfor i in range(1000):\n    codemode.call_tool('local', 'echo', n=i)\n";
    let mut group = c.benchmark_group("host_call");
    let gateway = {
        let code_mode = CodeMode::new(
            Arc::clone(&manager),
            executor.clone(),
            LimitOverrides::default(),
            BindingLevel::Server,
        );
        Gateway::new(Arc::clone(&manager), code_mode, None)
    };
    let direct: Arc<dyn ToolDispatcher> = gateway.script_calls(Permit::open());
    let permitted: Arc<dyn ToolDispatcher> = gateway.script_calls(permit.clone());
    for (name, tools) in [
        ("1000_calls_manager", direct),
        ("1000_calls_permitted", permitted),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let run = executor
                    .execute(script, &Limits::DEFAULT, Arc::clone(&tools))
                    .await
                    .expect("run");
                assert!(run.ok, "{:?}", run.error);
            });
        });
    }
    group.finish();

    let db = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&db.path().join("bench.db")).expect("store");
    let (plain, audited) = runtime.block_on(async {
        let state = |store: Option<Store>| {
            let executor = Executor::new(ExecutorConfig::default()).expect("sandbox");
            let manager = Arc::clone(&manager);
            async move {
                router(Arc::new(
                    App::assemble(&Config::default(), manager, executor, store)
                        .await
                        .expect("state"),
                ))
            }
        };
        (state(None).await, state(Some(store.clone())).await)
    });
    for (group_name, tool) in [
        ("tool_execute", "local-echo"),
        ("tool_execute_stdio", "everything-echo"),
    ] {
        let body = json!({"id": "1", "type": "function", "function": {"name": tool, "arguments": "{\"message\": \"hi\"}"}}).to_string();
        let mut group = c.benchmark_group(group_name);
        for (name, app) in [("without_audit", &plain), ("with_audit", &audited)] {
            group.bench_function(name, |b| {
                b.to_async(&runtime).iter(|| async {
                    let request = Request::post("/v1/mcp/tool/execute")
                        .header("content-type", "application/json")
                        .body(Body::from(body.clone()))
                        .expect("request");
                    let response = app.clone().oneshot(request).await.expect("response");
                    if !response.status().is_success() {
                        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await;
                        panic!("{tool}: {body:?}");
                    }
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, policy);
criterion_main!(benches);
