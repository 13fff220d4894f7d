//! Runs one script many times in fresh sandboxes, for profiling: `cargo run --release --example
//! profile_run -- SCRIPT [N]`. Every tool call answers with its own arguments.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use codemode::executor::{Executor, ExecutorConfig, Limits, ToolDispatcher, ToolError};
use serde_json::Value;

struct Echo;

#[async_trait]
impl ToolDispatcher for Echo {
    async fn call(&self, _client: &str, _tool: &str, arguments: Value) -> Result<Value, ToolError> {
        Ok(arguments)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("a script path");
    let runs: u32 = args.next().map_or(1000, |n| n.parse().expect("a count"));
    let code = std::fs::read_to_string(path).expect("readable script");
    let executor = Executor::new(ExecutorConfig::default()).expect("executor");
    let started = Instant::now();
    for _ in 0..runs {
        let result = executor
            .execute(&code, &Limits::DEFAULT, Arc::new(Echo))
            .await
            .expect("runs");
        assert!(result.ok, "{:?}", result.error);
    }
    let each = started.elapsed() / runs;
    println!("{runs} runs, {each:?} each");
}
