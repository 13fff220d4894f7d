//! Runs one script many times in fresh sandboxes, for profiling: `cargo run --release --example
//! profile_run -- SCRIPT [N]`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use codemode::executor::{Executor, ExecutorConfig, Limits, NoTools};

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
            .execute(&code, &Limits::DEFAULT, Arc::new(NoTools))
            .await
            .expect("runs");
        assert!(result.ok, "{:?}", result.error);
    }
    let each = started.elapsed() / runs;
    println!("{runs} runs, {each:?} each");
}
