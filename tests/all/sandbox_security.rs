//! A hostile script against the boundary: it may not cost the host more than its limits, forge
//! its outcome, or raise codemode's own alarm. Each test is named after the defect it pins.

use std::sync::Arc;

use codemode::executor::{ErrorKind, LimitKind, NoTools, RunResult};
use serde_json::json;

use crate::support::{TestTools, limits, run, run_ok, run_with};

fn error_of(result: &RunResult) -> (&str, Option<LimitKind>) {
    let error = result.error.as_ref().expect("the run failed");
    (error.kind.as_str(), error.limit)
}

// -- 1. the host's memory ---------------------------------------------------------------------

#[tokio::test]
async fn a_huge_argument_list_is_refused_before_the_host_reads_it() {
    // 60 MB of JSON built cheaply from one shared inner list: refused by its size, unread.
    let code = "import codemode\ninner = [0] * 1000\ntry:\n    \
                codemode.call_tool('test', 'echo', {'x': [inner] * 30000})\n\
                except codemode.LimitExceeded as e:\n    \
                result = [e.limit, e.allowed, e.observed > 50_000_000]";
    let result = run_with(code, limits(|_| {}), TestTools::new(0)).await;
    assert!(result.ok, "{:?}", result.error);
    assert_eq!(result.result, json!(["max_tool_arg_bytes", 1 << 20, true]));
    assert!(result.calls[0].request_bytes > 50_000_000);
}

#[tokio::test]
async fn arguments_that_would_outgrow_the_run_memory_on_the_host_raise_memory_error() {
    // 30 MB of text that would take about 500 MB as parsed values: the host stops parsing at
    // what the run's memory has left, and the script can recover.
    let code = "import codemode\ninner = [0] * 1000\ntry:\n    \
                codemode.call_tool('test', 'echo', {'x': [inner] * 15000})\n\
                except MemoryError as e:\n    result = str(e)";
    let tight = limits(|l| {
        l.memory_mb = 128;
        l.max_tool_arg_bytes = 64 << 20;
    });
    let result = run_with(code, tight, TestTools::new(0)).await;
    assert!(result.ok, "{:?}", result.error);
    let message = result.result.as_str().expect("a message");
    assert!(message.contains("memory limit has left"), "{message}");
    assert_eq!(result.calls[0].error_type, Some(ErrorKind::MemoryError));
    assert!(result.stats.peak_memory_bytes <= 128 << 20);
}

#[tokio::test]
async fn answers_the_script_has_not_read_count_against_its_memory() {
    // Sixty 4 MiB answers would be 240 MiB on the host; the run may hold 128 MiB in all. The
    // answers that do not fit are dropped and become a MemoryError for the script to catch.
    let code = "import codemode\n\
                pending = [codemode.call_tool_async('test', 'big', bytes=4 << 20) for _ in range(60)]\n\
                result = len(pending)";
    let result = run_with(code, limits(|l| l.memory_mb = 128), TestTools::new(0)).await;
    assert!(result.ok, "{:?}", result.error);
    let refused = result
        .calls
        .iter()
        .filter(|call| call.error_type == Some(ErrorKind::MemoryError))
        .count();
    assert!((1..60).contains(&refused), "{refused} of 60 refused");
    assert!(result.stats.peak_memory_bytes <= 128 << 20);
    // A script that reads what it can recovers as the memory frees.
    let reading = "import codemode\n\
                   pending = [codemode.call_tool_async('test', 'big', bytes=4 << 20) for _ in range(60)]\n\
                   read = refused = 0\nfor call in pending:\n    try:\n        call.result()\n        \
                   read += 1\n    except MemoryError:\n        refused += 1\nresult = [read, refused]";
    let result = run_with(reading, limits(|l| l.memory_mb = 128), TestTools::new(0)).await;
    assert!(result.ok, "{:?}", result.error);
    assert_eq!(
        result.result[0].as_u64().unwrap_or(0) + result.result[1].as_u64().unwrap_or(0),
        60
    );
    assert!(
        result.result[0].as_u64().unwrap_or(0) > 0,
        "{}",
        result.result
    );
}

// -- 5. the outcome is the host's -------------------------------------------------------------

#[tokio::test]
async fn rebinding_the_runtime_cannot_forge_the_outcome() {
    let code = r#"
import codemode, json, builtins
forged = '{"ok": false, "error": {"type": "TimeoutError", "message": "forged", "line": null, "traceback": "", "limit": "timeout_ms"}}'
codemode._dumps = lambda *a, **k: forged
json.dumps = lambda *a, **k: forged
codemode._error = lambda e: {}
codemode._prepare = None
builtins.isinstance = lambda *a: True
builtins.len = lambda *a: 0
raise ValueError("the real error")
"#;
    let result = run(code).await;
    assert_eq!(error_of(&result), ("ValueError", None));
    let error = result.error.expect("an error");
    assert_eq!(error.message, "the real error");
    assert_eq!(error.line, Some(10));
    assert!(
        error.traceback.contains("raise ValueError"),
        "{}",
        error.traceback
    );
    // Nothing of it survives into the next run.
    assert_eq!(run_ok("result = 1 + 1").await.result, 2);
}

#[tokio::test]
async fn a_script_cannot_claim_a_limit_the_host_did_not_hit() {
    let claims = [
        (
            "import codemode\nraise codemode.LimitExceeded('x', 'timeout_ms')",
            "LimitExceeded",
        ),
        (
            "import codemode\nraise codemode.LimitExceeded('x', 'max_tool_arg_bytes')",
            "LimitExceeded",
        ),
        ("raise MemoryError('x')", "MemoryError"),
        ("raise TimeoutError('x')", "TimeoutError"),
        ("raise RecursionError('x')", "RecursionError"),
    ];
    for (code, kind) in claims {
        let result = run(code).await;
        assert_eq!(error_of(&result), (kind, None), "{code}");
    }
}

#[tokio::test]
async fn a_limit_the_host_did_hit_is_reported_when_the_script_lets_it_through() {
    let code = "import codemode\ncodemode.call_tool('test', 'big', bytes=10000)";
    let result = run_with(
        code,
        limits(|l| l.max_tool_result_bytes = 1000),
        TestTools::new(0),
    )
    .await;
    assert_eq!(
        error_of(&result),
        ("LimitExceeded", Some(LimitKind::MaxToolResultBytes))
    );
}

// -- 7. InternalError is codemode's alone ------------------------------------------------------

#[tokio::test]
async fn values_json_cannot_hold_become_defined_values() {
    let code = "import math\nresult = [float('nan'), math.inf, -math.inf, 10**30, 2**63, \
                -2**63, (1, 2), {3}, b'\\xffok', {1: 'a', None: 'b', 2.5: 'c'}, {True: 'd'}, object]";
    let result = run_ok(code).await;
    assert_eq!(
        result.result,
        json!([
            "NaN",
            "Infinity",
            "-Infinity",
            "1000000000000000000000000000000",
            9_223_372_036_854_775_808_u64,
            -9_223_372_036_854_775_808_i64,
            [1, 2],
            [3],
            "\u{fffd}ok",
            {"1": "a", "null": "b", "2.5": "c"},
            {"true": "d"},
            "<class 'object'>"
        ])
    );
    let huge = run_ok("result = 10**400").await;
    assert_eq!(huge.result.as_str().map(str::len), Some(401));
}

#[tokio::test]
async fn a_result_that_contains_itself_is_a_value_error() {
    let result = run("a = []\na.append(a)\nresult = a").await;
    assert_eq!(error_of(&result), ("ValueError", None));
}

#[tokio::test]
async fn limit_exceeded_with_odd_fields_is_the_scripts_own_error() {
    let code = "import codemode\nraise codemode.LimitExceeded('odd', limit=object(), allowed=object(), observed=[1])";
    let result = run(code).await;
    assert_eq!(error_of(&result), ("LimitExceeded", None));
    assert_eq!(result.error.expect("an error").message, "odd");
}

#[tokio::test]
async fn the_runners_edge_cases_are_the_scripts_errors() {
    let cases = [
        (
            "import sys\nclass Code:\n    def __eq__(self, other):\n        raise RuntimeError('no')\n    \
             def __str__(self):\n        return 'odd exit'\nsys.exit(Code())",
            "SystemExit",
        ),
        (
            "raise SyntaxError('x', ('<script>', -5, 0, 'x'))",
            "SyntaxError",
        ),
        (
            "class Odd(Exception):\n    @property\n    def __traceback__(self):\n        raise RuntimeError('no')\nraise Odd('x')",
            "Odd",
        ),
        (
            "class Mute(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\nraise Mute()",
            "Mute",
        ),
        (
            "import sys, builtins\nsys.modules.clear()\nbuiltins.__dict__.clear()\n1 / 0",
            "ZeroDivisionError",
        ),
    ];
    for (code, kind) in cases {
        let result = run(code).await;
        assert_eq!(
            error_of(&result),
            (kind, None),
            "{code}: {:?}",
            result.error
        );
    }
    let emptied = run_ok("import sys, builtins\nsys.modules.clear()\nbuiltins.__dict__.clear()\nresult = {'a': (1, 2)}").await;
    assert_eq!(emptied.result, json!({"a": [1, 2]}));
    // The line is where the script raised it, not the one it claims.
    let negative = run("\nraise SyntaxError('x', ('<script>', -5, 0, 'x'))").await;
    assert_eq!(negative.error.expect("an error").line, Some(2));
}

#[tokio::test]
async fn os_exit_is_reported_like_sys_exit() {
    let clean = run_ok("import os\nprint('bye')\nos._exit(0)").await;
    assert_eq!(clean.stdout, "bye\n");
    assert_eq!(clean.result, json!(null));
    let failed = run("import os\nos._exit(3)").await;
    assert_eq!(error_of(&failed), ("SystemExit", None));
    assert_eq!(failed.error.expect("an error").message, "3");
}

#[tokio::test]
async fn a_size_past_the_address_space_is_a_memory_error() {
    let cases = [
        "result = len(''.join(['a' * 2**16] * 2**16))",
        "import re\nresult = len(re.sub('a', 'b' * 2**16, 'a' * 2**16))",
    ];
    for code in cases {
        let result = run(code).await;
        assert_eq!(
            error_of(&result),
            ("MemoryError", Some(LimitKind::MemoryMb)),
            "{code}: {:?}",
            result.error
        );
    }
    assert_eq!(run_ok("result = 'still fine'").await.result, "still fine");
}

#[tokio::test]
async fn a_script_class_named_internal_error_is_not_codemodes() {
    let result = run("class InternalError(Exception):\n    pass\nraise InternalError('x')").await;
    assert_eq!(error_of(&result), ("__main__.InternalError", None));
}

#[tokio::test]
async fn a_long_error_message_is_cut_not_carried_whole() {
    let result = run_with(
        "raise ValueError('x' * 10_000_000)",
        limits(|_| {}),
        Arc::new(NoTools),
    )
    .await;
    let error = result.error.expect("an error");
    assert_eq!(error.kind, "ValueError");
    assert!(
        error.message.len() < 70_000,
        "{} bytes",
        error.message.len()
    );
    assert!(error.message.ends_with("bytes in all]"));
}
