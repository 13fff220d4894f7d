//! 1,000 sequential executions in one process leave its memory flat.
//!
//! A binary of its own: the resident size of the process is the measurement, so no other test may
//! run beside it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use codemode::executor::{Executor, ExecutorConfig, Limits, NoTools};

/// Resident set size of this process, in bytes (Linux).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("procfs");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("rss field");
    pages * 4096
}

#[tokio::test]
async fn a_thousand_executions_keep_memory_flat() {
    let executor = Executor::new(ExecutorConfig::default()).expect("executor");
    let code =
        "data = [str(i) * 10 for i in range(5000)]\nprint(len(data))\nresult = {'n': len(data)}";
    let run = async || {
        let result = executor
            .execute(code, &Limits::DEFAULT, Arc::new(NoTools))
            .await
            .expect("runs");
        assert!(result.ok, "{:?}", result.error);
    };
    for _ in 0..100 {
        run().await;
    }
    let warm = resident_bytes();
    for _ in 0..900 {
        run().await;
    }
    let grown = resident_bytes().saturating_sub(warm);
    assert!(
        grown < 32 << 20,
        "900 more executions grew the process by {} MiB",
        grown >> 20
    );
}
