//! The sandbox: one executor for the whole binary, runs, and in-process tools.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use codemode::executor::{
    Executor, ExecutorConfig, Limits, NoTools, RunResult, ToolDispatcher, ToolError,
};
use serde_json::{Value, json};

/// One executor (one engine, one loaded module) shared by every test of this binary.
pub static EXECUTOR: LazyLock<Executor> = LazyLock::new(|| {
    let config = ExecutorConfig {
        max_concurrent: 8,
        ..ExecutorConfig::default()
    };
    Executor::new(config).expect("the embedded sandbox loads")
});

/// Runs `code` with default limits and no tools.
pub async fn run(code: &str) -> RunResult {
    run_with(code, Limits::DEFAULT, Arc::new(NoTools)).await
}

/// Runs `code` with `limits` and `tools`.
pub async fn run_with(code: &str, limits: Limits, tools: Arc<dyn ToolDispatcher>) -> RunResult {
    EXECUTOR
        .execute(code, &limits, tools)
        .await
        .expect("the execution starts")
}

/// The default limits with `change` applied.
pub fn limits(change: impl FnOnce(&mut Limits)) -> Limits {
    let mut limits = Limits::DEFAULT;
    change(&mut limits);
    limits
}

/// Runs `code` and asserts that it succeeded, showing the error otherwise.
pub async fn run_ok(code: &str) -> RunResult {
    let result = run(code).await;
    assert!(result.ok, "script failed: {:#?}", result.error);
    result
}

/// Tools implemented in the test process: `echo`, `add`, `sleep`, `fail`, `deny`, `big`, and
/// `meet` (waits until `meet_at` calls are in flight at once, proving concurrency).
pub struct TestTools {
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub calls: AtomicUsize,
    meeting: tokio::sync::Barrier,
}

impl TestTools {
    pub fn new(meet_at: usize) -> Arc<TestTools> {
        Arc::new(TestTools {
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            meeting: tokio::sync::Barrier::new(meet_at),
        })
    }
}

#[async_trait]
impl ToolDispatcher for TestTools {
    async fn call(&self, client: &str, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let answer = match (client, tool) {
            ("test", "echo") => Ok(args),
            ("test", "add") => {
                let a = args["a"].as_i64().unwrap_or(0);
                let b = args["b"].as_i64().unwrap_or(0);
                Ok(json!(a + b))
            }
            ("test", "sleep") => {
                let ms = args["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(json!({"slept_ms": ms}))
            }
            ("test", "meet") => {
                self.meeting.wait().await;
                Ok(json!("met"))
            }
            ("test", "fail") => Err(ToolError::Failed("upstream said no".into())),
            ("test", "deny") => Err(ToolError::Denied(
                "test.deny is not allowed for this caller".into(),
            )),
            ("test", "slow_timeout") => Err(ToolError::Timeout(Duration::from_millis(5))),
            ("test", "big") => Ok(json!(
                "x".repeat(args["bytes"].as_u64().unwrap_or(0) as usize)
            )),
            _ => Err(ToolError::NotFound(format!("no tool {client}.{tool}"))),
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        answer
    }
}
