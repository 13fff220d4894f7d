//! A hostile script costs the host no more memory than its run's own limit.
//!
//! A binary of its own: the peak resident size of the process is the measurement, so no other
//! test may run beside it. Each case resets the kernel's peak (`/proc/self/clear_refs`), runs one
//! script and compares the peak with the resident size before it. The guest's own memory is
//! resident too, so the bound is the run's memory limit plus a margin for the host's fixed costs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use codemode::executor::{Executor, ExecutorConfig, Limits, ToolDispatcher, ToolError};
use serde_json::Value;

/// What the host may use beyond the run's memory limit: buffers of fixed size, allocator slack.
const MARGIN_BYTES: u64 = 64 << 20;

/// A tool that answers after a while with a small value, so calls stay in flight.
struct SlowTool;

#[async_trait]
impl ToolDispatcher for SlowTool {
    async fn call(
        &self,
        _client: &str,
        _tool: &str,
        _arguments: Value,
    ) -> Result<Value, ToolError> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(Value::Bool(true))
    }
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("the field is there")
}

fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("the peak can be reset");
}

#[tokio::test]
async fn hostile_scripts_cost_the_host_no_more_than_their_memory_limit() {
    let executor = Executor::new(ExecutorConfig::default()).expect("executor");
    let with = |change: fn(&mut Limits)| {
        let mut limits = Limits::DEFAULT;
        change(&mut limits);
        limits
    };
    let cases: [(&str, &str, Limits); 3] = [
        (
            // Was 2.1 GB: parsed on the host before its size was compared.
            "a 60 MB argument list",
            "import codemode\ninner = [0] * 1000\ntry:\n    \
             codemode.call_tool('t', 'slow', {'x': [inner] * 30000})\n\
             except codemode.LimitExceeded:\n    pass",
            Limits::DEFAULT,
        ),
        (
            // Was 795 MB: every refused call kept its whole name, twice, and in the record.
            "5 MB names in a loop",
            "import codemode\nname = 'n' * 5_000_000\nwhile True:\n    try:\n        \
             codemode.call_tool(name, name)\n    except Exception:\n        pass",
            with(|l| {
                l.memory_mb = 128;
                l.timeout_ms = 1_000;
                l.max_tool_calls = 100_000;
            }),
        ),
        (
            // A thousand calls in flight with a megabyte of arguments each: 1 GB unbounded.
            "a thousand slow calls with 1 MB of arguments each",
            "import codemode\nargs = {'x': 'y' * 1_000_000}\n\
             calls = [codemode.call_tool_async('t', 'slow', args) for _ in range(1000)]\n\
             codemode.gather(*calls, return_exceptions=True)",
            Limits::DEFAULT,
        ),
    ];
    // The engine, the module and the first instance slot are the process's fixed costs.
    executor
        .execute("print(1)", &Limits::DEFAULT, Arc::new(SlowTool))
        .await
        .expect("runs");
    for (name, code, limits) in cases {
        reset_peak();
        let before = status_kib("VmRSS:") << 10;
        let result = executor
            .execute(code, &limits, Arc::new(SlowTool))
            .await
            .expect("runs");
        let grown = (status_kib("VmHWM:") << 10).saturating_sub(before);
        let bound = (limits.memory_mb << 20) + MARGIN_BYTES;
        eprintln!(
            "{name}: the process grew by {} MiB at its peak (bound {} MiB); {:?}",
            grown >> 20,
            bound >> 20,
            result.error.as_ref().map(|e| &e.kind)
        );
        assert!(
            grown <= bound,
            "{name}: the process grew by {} MiB, over the run's {} MiB and a {} MiB margin",
            grown >> 20,
            limits.memory_mb,
            MARGIN_BYTES >> 20
        );
    }
}
