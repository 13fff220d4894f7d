//! Tool calls from Python: synchronous by default, concurrent when fanned out, typed errors.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use codemode::executor::{ErrorKind, Limits};
use serde_json::json;

use crate::support::{TestTools, run_with};

#[tokio::test]
async fn a_call_returns_the_tools_value_and_is_recorded() {
    let code = "import codemode\nresult = codemode.call_tool('test', 'add', {'a': 2}, b=40)";
    let result = run_with(code, Limits::DEFAULT, TestTools::new(1)).await;
    assert_eq!(result.result, json!(42));
    let call = &result.calls[0];
    assert_eq!(
        (call.client.as_str(), call.tool.as_str(), call.ok),
        ("test", "add", true)
    );
    assert!(call.request_bytes > 0 && call.response_bytes > 0);
}

#[tokio::test]
async fn json_values_round_trip_through_a_call() {
    let code = "import codemode\nv = {'s': 'é🐍', 'n': [1, 2.5, None, True], 'd': {'k': {}}}\nresult = codemode.call_tool('test', 'echo', v) == v";
    let result = run_with(code, Limits::DEFAULT, TestTools::new(1)).await;
    assert_eq!(result.result, json!(true));
}

#[tokio::test]
async fn ten_awaited_calls_run_at_once() {
    // `meet` returns only when ten calls are in flight together: a sequential host would hang
    // until the deadline instead.
    let tools = TestTools::new(10);
    let code = "import codemode\nresult = codemode.gather(*[codemode.call_tool_async('test', 'meet') for _ in range(10)])";
    let result = run_with(code, Limits::DEFAULT, tools.clone()).await;
    assert!(result.ok, "{:?}", result.error);
    assert_eq!(result.result, json!(vec!["met"; 10]));
    assert_eq!(tools.max_in_flight.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn ten_slow_calls_take_the_time_of_one() {
    let code = "import asyncio, codemode\nasync def main():\n    calls = [codemode.call_tool_async('test', 'sleep', ms=100) for _ in range(10)]\n    return await asyncio.gather(*calls)\nresult = len(asyncio.run(main()))";
    let started = Instant::now();
    let result = run_with(code, Limits::DEFAULT, TestTools::new(1)).await;
    assert_eq!(result.result, json!(10));
    let elapsed = started.elapsed().as_millis();
    assert!(
        elapsed < 500,
        "10 x 100 ms calls took {elapsed} ms; sequential would be 1000"
    );
}

#[tokio::test]
async fn coroutines_that_await_calls_interleave() {
    let tools = TestTools::new(3);
    let code = "import codemode\nasync def step(i):\n    met = await codemode.call_tool_async('test', 'meet')\n    total = await codemode.call_tool_async('test', 'add', a=i, b=10)\n    return (met, total)\nresult = codemode.gather(step(1), step(2), step(3))";
    let result = run_with(code, Limits::DEFAULT, tools).await;
    assert!(result.ok, "{:?}", result.error);
    assert_eq!(
        result.result,
        json!([["met", 11], ["met", 12], ["met", 13]])
    );
}

#[tokio::test]
async fn a_failing_tool_raises_tool_error_with_its_names() {
    let code = "import codemode\ntry:\n    codemode.call_tool('test', 'fail')\nexcept codemode.ToolError as e:\n    result = [str(e), e.server, e.tool]";
    let result = run_with(code, Limits::DEFAULT, TestTools::new(1)).await;
    assert_eq!(result.result, json!(["upstream said no", "test", "fail"]));
    assert_eq!(
        result.calls[0].error_type.map(ErrorKind::as_str),
        Some("ToolError")
    );
}

#[tokio::test]
async fn an_uncaught_tool_error_fails_the_run_at_the_calling_line() {
    let code = "import codemode\n\ncodemode.call_tool('test', 'fail')\n";
    let result = run_with(code, Limits::DEFAULT, TestTools::new(1)).await;
    let error = result.error.expect("an error");
    assert_eq!((error.kind.as_str(), error.line), ("ToolError", Some(3)));
}

#[tokio::test]
async fn a_denied_tool_raises_permission_error() {
    let code = "import codemode\ntry:\n    codemode.call_tool('test', 'deny')\nexcept PermissionError as e:\n    result = str(e)";
    let result = run_with(code, Limits::DEFAULT, TestTools::new(1)).await;
    assert_eq!(
        result.result,
        json!("test.deny is not allowed for this caller")
    );
}

#[tokio::test]
async fn a_tool_timeout_is_both_a_tool_error_and_a_timeout_error() {
    let code = "import codemode\ntry:\n    codemode.call_tool('test', 'slow_timeout')\nexcept TimeoutError as e:\n    result = [type(e).__name__, isinstance(e, codemode.ToolError)]";
    let result = run_with(code, Limits::DEFAULT, TestTools::new(1)).await;
    assert_eq!(result.result, json!(["ToolTimeoutError", true]));
}

#[tokio::test]
async fn gather_can_return_exceptions_in_place() {
    let code = "import codemode\nr = codemode.gather(codemode.call_tool_async('test', 'fail'), codemode.call_tool_async('test', 'add', a=1, b=1), return_exceptions=True)\nresult = [type(r[0]).__name__, r[1]]";
    let result = run_with(code, Limits::DEFAULT, TestTools::new(1)).await;
    assert_eq!(result.result, json!(["ToolError", 2]));
}

#[tokio::test]
async fn arguments_that_are_not_json_raise_type_error() {
    let code = "import codemode\ncodemode.call_tool('test', 'echo', x=object())";
    let result = run_with(code, Limits::DEFAULT, TestTools::new(1)).await;
    assert_eq!(result.error.expect("an error").kind, "TypeError");
}

#[tokio::test]
async fn calls_never_awaited_are_still_recorded() {
    let tools = TestTools::new(1);
    let code = "import codemode\ncodemode.call_tool_async('test', 'echo')\nresult = 1";
    let result = run_with(code, Limits::DEFAULT, Arc::clone(&tools) as _).await;
    assert!(result.ok);
    assert_eq!(result.calls.len(), 1);
}

#[tokio::test]
async fn keyword_arguments_merge_into_the_dict_and_win() {
    let code = "import codemode\nresult = codemode.call_tool('test', 'echo', {'a': 1, 'b': 2}, b=3, c=[4])";
    let result = run_with(code, Limits::DEFAULT, TestTools::new(1)).await;
    assert_eq!(result.result, json!({"a": 1, "b": 3, "c": [4]}));
}

#[tokio::test]
async fn arguments_that_are_not_a_dict_raise_type_error() {
    let code = "import codemode\ncodemode.call_tool('test', 'echo', [1, 2])";
    let result = run_with(code, Limits::DEFAULT, TestTools::new(1)).await;
    let error = result.error.expect("an error");
    assert_eq!(error.kind, "TypeError");
    assert!(error.message.contains("dict"), "{}", error.message);
}
