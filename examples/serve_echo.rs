//! codemode's HTTP service with one in-process tool, `local.echo`, for load runs that measure the
//! service and the sandbox without an upstream process (`benches/load/code_execute.py --script
//! calls`): `cargo run --release --example serve_echo`. Prints `listening http://ADDRESS` once
//! ready and serves until killed.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use codemode::app::App;
use codemode::config::Config;
use codemode::executor::{Executor, ExecutorConfig};
use codemode::mcp::{InProcessTool, McpManager};
use codemode::server::serve;
use serde_json::{Value, json};

#[tokio::main]
async fn main() {
    let config = Config::parse(r#"{"sandbox": {"max_queued": 1024}}"#).expect("config");
    let manager = Arc::new(McpManager::start(&config.mcp).await);
    let echo = InProcessTool::new(
        "echo",
        "Echoes its message.",
        json!({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}),
        |arguments: Value| async move { Ok(json!(format!("Echo: {}", arguments["message"]))) },
    );
    manager
        .add_in_process("local", vec![echo])
        .await
        .expect("in-process tool");
    let executor = Executor::new(ExecutorConfig {
        max_queued: 1024,
        ..ExecutorConfig::default()
    })
    .expect("sandbox");
    let app = Arc::new(
        App::assemble(&config, manager, executor, None)
            .await
            .expect("application"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!(
        "listening http://{}",
        listener.local_addr().expect("address")
    );
    serve(listener, app, std::future::pending())
        .await
        .expect("serves");
}
