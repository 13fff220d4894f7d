//! Code-mode call overhead (issue 4): 100 `echo` calls made by one script, against the same 100
//! calls made directly on the manager, for an in-process tool and for server-everything over
//! stdio. An empty script gives the fixed cost of a run, so
//! per-call overhead = (script − empty script − direct) / 100.
//! Needs `npm ci --prefix tests/servers`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::sync::Arc;

use codemode::code_mode::CodeMode;
use codemode::config::{BindingLevel, Config};
use codemode::executor::{Executor, ExecutorConfig, LimitOverrides};
use codemode::gateway::Gateway;
use codemode::mcp::{InProcessTool, McpManager};
use codemode::policy::Permit;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

const CALLS: usize = 100;

fn server_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
        .display()
        .to_string()
}

fn code_mode(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (calls, gateway) = runtime.block_on(async {
        let config = json!({"mcp": {"client_configs": [{"name": "everything", "connection_type": "stdio",
            "stdio_config": {"command": "node", "args": [server_script(), "stdio"]}}]}});
        let config = Config::parse(&config.to_string()).expect("config");
        let manager = Arc::new(McpManager::start(&config.mcp).await);
        let echo = InProcessTool::new(
            "echo",
            "Echoes its message.",
            json!({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}),
            |arguments: Value| async move { Ok(json!(format!("Echo: {}", arguments["message"]))) },
        );
        manager.add_in_process("local", vec![echo]).await.expect("in-process");
        let executor = Executor::new(ExecutorConfig::default()).expect("sandbox");
        let code_mode = CodeMode::new(
            Arc::clone(&manager),
            executor,
            LimitOverrides::default(),
            BindingLevel::Server,
        );
        let gateway = Gateway::new(Arc::clone(&manager), code_mode, None);
        let calls = gateway.script_calls(Permit::open());
        (calls, gateway)
    });

    let mut group = c.benchmark_group("code_mode_100_calls");
    group.bench_function("empty_script", |b| {
        b.to_async(&runtime).iter(|| async {
            let run = gateway
                .run_code(&Permit::open(), "result = 1", &LimitOverrides::default())
                .await
                .expect("run");
            assert!(run.result.ok);
        });
    });
    for client in ["local", "everything"] {
        group.bench_function(format!("{client}/direct_manager"), |b| {
            b.to_async(&runtime).iter(|| async {
                for _ in 0..CALLS {
                    calls
                        .call(client, "echo", json!({"message": "hi"}))
                        .await
                        .expect("echo");
                }
            });
        });
        let script =
            format!("for _ in range({CALLS}):\n    {client}.echo(message='hi')\nresult = 1");
        group.bench_function(format!("{client}/script"), |b| {
            b.to_async(&runtime).iter(|| async {
                let run = gateway
                    .run_code(&Permit::open(), &script, &LimitOverrides::default())
                    .await
                    .expect("run");
                assert!(run.result.ok, "{:?}", run.result.error);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, code_mode);
criterion_main!(benches);
