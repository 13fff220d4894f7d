//! Every limit, hit once: each ends the run (or the call) with its typed error, never the host.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use codemode::executor::{
    DEFAULT_MAX_EXECUTIONS, DEFAULT_MAX_QUEUED, ErrorKind, ExecuteError, Executor, ExecutorConfig,
    LimitKind, Limits, NoTools, ToolDispatcher,
};

use crate::support::{TestTools, limits, run, run_ok, run_with};

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_deadline() {
    let started = Instant::now();
    let result = run_with(
        "while True:\n    pass",
        limits(|l| l.timeout_ms = 300),
        Arc::new(NoTools),
    )
    .await;
    let elapsed = started.elapsed().as_millis();
    let error = result.error.expect("a timeout");
    assert_eq!(error.kind, "TimeoutError");
    assert_eq!(error.limit.map(LimitKind::as_str), Some("timeout_ms"));
    assert!(elapsed < 300 + 100, "stopped {elapsed} ms after start");
}

#[tokio::test]
async fn a_sleep_never_outlives_the_deadline() {
    let started = Instant::now();
    let result = run_with(
        "import time\ntime.sleep(30)",
        limits(|l| l.timeout_ms = 200),
        Arc::new(NoTools),
    )
    .await;
    assert_eq!(result.error.expect("a timeout").kind, "TimeoutError");
    assert!(started.elapsed().as_millis() < 200 + 100);
}

#[tokio::test]
async fn a_hanging_tool_call_ends_at_the_deadline() {
    let tools = TestTools::new(2); // `meet` needs two callers; only one comes.
    let result = run_with(
        "import codemode\ncodemode.call_tool('test', 'meet')",
        limits(|l| l.timeout_ms = 200),
        tools,
    )
    .await;
    assert_eq!(result.error.expect("a timeout").kind, "TimeoutError");
    assert_eq!(result.calls.len(), 1);
    assert_eq!(
        result.calls[0].error_type.map(ErrorKind::as_str),
        Some("Cancelled")
    );
}

#[tokio::test]
async fn a_huge_allocation_is_a_memory_error_and_the_next_run_is_fine() {
    // 400 MB: the host refuses the growth, so the memory limit fired.
    let result = run("x = [0] * 10**8").await;
    let error = result.error.expect("a memory error");
    assert_eq!(error.kind, "MemoryError");
    assert_eq!(error.limit.map(LimitKind::as_str), Some("memory_mb"));
    // 4 GB: past what the 32-bit sandbox can address, the interpreter refuses the size itself
    // and asks the host for nothing; the host reports no limit it did not see fire.
    let result = run("x = [0] * 10**9").await;
    let error = result.error.expect("a memory error");
    assert_eq!(error.kind, "MemoryError");
    assert_eq!(error.limit, None);
    assert_eq!(run_ok("result = sum([1] * 1000)").await.result, 1000);
}

#[tokio::test]
async fn growing_past_the_memory_limit_is_a_memory_error() {
    let code = "chunks = []\nwhile True:\n    chunks.append(bytearray(4 << 20))";
    let result = run_with(code, limits(|l| l.memory_mb = 96), Arc::new(NoTools)).await;
    let error = result.error.expect("a memory error");
    assert_eq!(error.kind, "MemoryError");
    assert!(result.stats.peak_memory_bytes <= 96 << 20);
}

#[tokio::test]
async fn python_recursion_stops_at_the_recursion_limit() {
    let result = run("def f(n):\n    return f(n + 1)\nf(0)").await;
    assert_eq!(result.error.expect("an error").kind, "RecursionError");
}

#[tokio::test]
async fn recursion_past_a_raised_limit_is_a_clean_error() {
    let result =
        run("import sys\nsys.setrecursionlimit(10**6)\ndef f(n):\n    return f(n + 1)\nf(0)").await;
    let error = result.error.expect("an error");
    assert_eq!(error.kind, "RecursionError", "{error:?}");
    assert_eq!(
        error.limit.map(LimitKind::as_str),
        Some("wasm_stack"),
        "the wasm stack, not Python, stopped it"
    );
    assert_eq!(run_ok("result = 1").await.result, 1);
}

#[tokio::test]
async fn a_huge_print_is_truncated_with_a_marker() {
    let result = run_ok("print('x' * (100 * 1024 * 1024))\nresult = 'still running'").await;
    assert_eq!(result.result, "still running");
    assert!(result.stats.output_truncated);
    assert!(result.stdout.len() < (1 << 20) + 200);
    assert!(
        result.stdout.ends_with(" more bytes dropped]\n"),
        "{}",
        &result.stdout[result.stdout.len() - 80..]
    );
    assert!(result.stats.output_bytes > 100 * 1024 * 1024);
}

#[tokio::test]
async fn an_oversized_result_is_refused() {
    let result = run_with(
        "result = 'y' * 5000",
        limits(|l| l.max_result_bytes = 1000),
        Arc::new(NoTools),
    )
    .await;
    let error = result.error.expect("an error");
    assert_eq!(error.kind, "LimitExceeded");
    assert_eq!(error.limit.map(LimitKind::as_str), Some("max_result_bytes"));
}

#[tokio::test]
async fn the_call_past_the_limit_ends_the_run() {
    let tools = TestTools::new(1);
    let code = "import codemode\nfor i in range(1001):\n    codemode.call_tool('test', 'add', a=i, b=1)\nresult = 'unreachable'";
    let result = run_with(code, limits(|l| l.max_tool_calls = 1000), tools.clone()).await;
    let error = result.error.expect("a limit");
    assert_eq!(error.kind, "LimitExceeded");
    assert_eq!(error.limit.map(LimitKind::as_str), Some("max_tool_calls"));
    assert_eq!(
        tools.calls.load(Ordering::SeqCst),
        1000,
        "the 1001st call never reached the tool"
    );
    assert_eq!(result.calls.len(), 1000);
}

#[tokio::test]
async fn the_call_limit_cannot_be_caught() {
    let tools = TestTools::new(1);
    let code = "import codemode\ntry:\n    for i in range(5):\n        codemode.call_tool('test', 'echo')\nexcept BaseException:\n    result = 'caught'";
    let result = run_with(code, limits(|l| l.max_tool_calls = 2), tools).await;
    assert_eq!(result.error.expect("a limit").kind, "LimitExceeded");
}

#[tokio::test]
async fn an_oversized_argument_raises_in_python_and_reaches_no_tool() {
    let tools = TestTools::new(1);
    let code = "import codemode\ntry:\n    codemode.call_tool('test', 'echo', data='z' * 5000)\nexcept codemode.LimitExceeded as e:\n    result = [e.limit, e.allowed]";
    let result = run_with(code, limits(|l| l.max_tool_arg_bytes = 1000), tools.clone()).await;
    assert!(result.ok, "{:?}", result.error);
    assert_eq!(
        result.result,
        serde_json::json!(["max_tool_arg_bytes", 1000])
    );
    assert_eq!(tools.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rebinding_len_does_not_let_a_result_past_max_result_bytes() {
    // The result is measured by native code as it is encoded (and again by the host), never
    // with a Python name the script can rebind.
    let code = "import builtins\nbuiltins.len = lambda _: 0\nresult = 'y' * 5000";
    let result = run_with(
        code,
        limits(|l| l.max_result_bytes = 1000),
        Arc::new(NoTools),
    )
    .await;
    assert!(!result.ok, "{:?}", result.result);
    let error = result.error.expect("an error");
    assert_eq!(error.kind, "LimitExceeded");
    assert_eq!(error.limit, Some(LimitKind::MaxResultBytes));
    assert!(
        error
            .message
            .starts_with("the result is at least 5001 bytes of JSON, over the limit of 1000"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn an_oversized_tool_result_raises_in_python() {
    let code = "import codemode\ntry:\n    codemode.call_tool('test', 'big', bytes=10000)\nexcept codemode.LimitExceeded as e:\n    result = e.limit";
    let result = run_with(
        code,
        limits(|l| l.max_tool_result_bytes = 1000),
        TestTools::new(1),
    )
    .await;
    assert_eq!(result.result, "max_tool_result_bytes");
    assert_eq!(
        result.calls[0].error_type.map(ErrorKind::as_str),
        Some("LimitExceeded")
    );
}

#[tokio::test]
async fn limits_above_the_maximum_are_refused_before_running() {
    let too_long = limits(|l| l.timeout_ms = Limits::MAXIMUM.timeout_ms + 1);
    let error = crate::support::EXECUTOR
        .execute("1", &too_long, Arc::new(NoTools))
        .await
        .err();
    assert!(matches!(error, Some(ExecuteError::Limits(_))), "{error:?}");
}

/// Scripts waiting on a tool hold no core: with the default bound, 63 scripts wait at a barrier
/// while a CPU-bound script runs beside them to its end (on two worker threads); the slots and
/// the queue then full, one more is refused as busy; and everything finishes once released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_waiting_on_tools_hold_no_core() {
    let executor = Executor::new(ExecutorConfig::default()).expect("executor");
    let waiting = DEFAULT_MAX_EXECUTIONS - 1;
    // The waiting scripts, the CPU-bound one once it is done, and this test.
    let tools = TestTools::new(waiting + 2);
    let spawn = |code: &'static str| {
        let executor = executor.clone();
        let tools: Arc<dyn ToolDispatcher> = tools.clone();
        tokio::spawn(async move { executor.execute(code, &Limits::DEFAULT, tools).await })
    };
    let mut runs: Vec<_> = (0..waiting)
        .map(|_| spawn("import codemode\ncodemode.call_tool('test', 'meet')"))
        .collect();
    runs.push(spawn(
        "import codemode\nresult = sum(i * i for i in range(300_000))\ncodemode.call_tool('test', 'meet')",
    ));
    // Every waiting script and the CPU-bound one (its work done) are at the barrier.
    while tools.calls.load(Ordering::SeqCst) < waiting + 1 {
        tokio::task::yield_now().await;
    }
    assert_eq!(executor.load(), (DEFAULT_MAX_EXECUTIONS, 0));
    runs.extend((0..DEFAULT_MAX_QUEUED).map(|_| spawn("1")));
    while executor.load().1 < DEFAULT_MAX_QUEUED {
        tokio::task::yield_now().await;
    }
    let refused = executor
        .execute("1", &Limits::DEFAULT, Arc::new(NoTools))
        .await;
    assert!(
        matches!(refused, Err(ExecuteError::Busy { .. })),
        "{refused:?}"
    );
    tools
        .call("test", "meet", serde_json::json!({}))
        .await
        .expect("meet");
    for run in runs {
        let result = run.await.expect("joined").expect("ran");
        assert!(result.ok, "{:?}", result.error);
    }
    assert_eq!(executor.load(), (0, 0));
}

#[tokio::test]
async fn a_full_queue_answers_busy() {
    let config = ExecutorConfig {
        max_concurrent: 1,
        max_queued: 0,
        ..ExecutorConfig::default()
    };
    let executor = Executor::new(config).expect("executor");
    let tools = TestTools::new(2);
    let first = {
        let executor = executor.clone();
        let tools: Arc<dyn ToolDispatcher> = tools.clone();
        tokio::spawn(async move {
            executor
                .execute(
                    "import codemode\ncodemode.call_tool('test', 'meet')",
                    &Limits::DEFAULT,
                    tools,
                )
                .await
        })
    };
    // The first run holds the only slot until the test meets it at the barrier.
    while tools.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let second = executor
        .execute("1", &Limits::DEFAULT, Arc::new(NoTools))
        .await;
    assert!(
        matches!(second, Err(ExecuteError::Busy { .. })),
        "{second:?}"
    );
    tools
        .call("test", "meet", serde_json::json!({}))
        .await
        .expect("meet");
    let first = first.await.expect("joined").expect("ran");
    assert!(first.ok, "{:?}", first.error);
}

#[tokio::test]
async fn huge_names_are_cut_in_the_run_record() {
    let code = "import codemode\nfor _ in range(20):\n    try:\n        codemode.call_tool('c' * 100000, 't' * 100000)\n    except codemode.ToolError:\n        pass";
    let result = run_with(code, Limits::DEFAULT, Arc::new(NoTools)).await;
    assert!(result.ok, "{:?}", result.error);
    assert_eq!(result.calls.len(), 20);
    for call in &result.calls {
        assert!(
            call.client.len() < 300 && call.tool.len() < 300,
            "{}",
            call.client.len()
        );
        assert!(call.client.ends_with("(100000 bytes)"), "{}", call.client);
    }
}
