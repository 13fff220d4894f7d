//! The sandbox reaches nothing of the host: each attempt fails with a clear Python error, and
//! nothing survives from one execution to the next.

use crate::support::{run, run_ok};

/// Runs `code`, expects it to fail with `kind`, and the message to explain itself.
async fn assert_refused(code: &str, kind: &str) {
    let result = run(code).await;
    let error = result
        .error
        .unwrap_or_else(|| panic!("`{code}` should fail, printed {:?}", result.stdout));
    assert_eq!(error.kind, kind, "`{code}`: {}", error.message);
    assert!(
        error.message.contains("sandbox"),
        "`{code}` should say why: {}",
        error.message
    );
    assert_eq!(error.line, Some(1), "`{code}`");
}

#[tokio::test]
async fn files_cannot_be_opened() {
    assert_refused("open('/etc/passwd').read()", "PermissionError").await;
}

#[tokio::test]
async fn files_cannot_be_opened_through_io_either() {
    let result = run("import io\nio.open('/etc/passwd').read()").await;
    let error = result.error.expect("io.open fails");
    assert!(
        ["PermissionError", "FileNotFoundError", "OSError"].contains(&error.kind.as_str()),
        "{error:?}"
    );
}

#[tokio::test]
async fn directories_cannot_be_listed() {
    assert_refused("import os; os.listdir('/')", "PermissionError").await;
}

#[tokio::test]
async fn sockets_do_not_exist() {
    assert_refused("import socket", "ModuleNotFoundError").await;
}

#[tokio::test]
async fn the_environment_is_not_visible() {
    assert_refused("import os; os.environ['HOME']", "PermissionError").await;
    assert_refused("import os; os.getenv('PATH')", "PermissionError").await;
}

#[tokio::test]
async fn processes_cannot_be_started() {
    assert_refused("import subprocess", "ModuleNotFoundError").await;
    assert_refused("__import__('os').system('id')", "PermissionError").await;
}

#[tokio::test]
async fn native_code_cannot_be_loaded() {
    assert_refused("import ctypes", "ModuleNotFoundError").await;
}

#[tokio::test]
async fn randomness_is_fresh_in_every_execution() {
    let code = "import random, os\nresult = [random.random(), os.urandom(8).hex()]";
    let first = run_ok(code).await.result;
    let second = run_ok(code).await.result;
    assert_ne!(first[0], second[0]);
    assert_ne!(first[1], second[1]);
}

#[tokio::test]
async fn nothing_leaks_between_executions() {
    let polluter = "import builtins, sys, json\nbuiltins.leaked = 1\nsys.modules['json'].leaked = 2\nLEAK = 3\njson.dumps = None";
    run_ok(polluter).await;
    let probe = run_ok(
        "import builtins, json\nresult = [hasattr(builtins, 'leaked'), hasattr(json, 'leaked'), 'LEAK' in globals(), json.dumps([1])]",
    )
    .await;
    assert_eq!(
        probe.result,
        serde_json::json!([false, false, false, "[1]"])
    );
}

#[tokio::test]
async fn clocks_are_readable() {
    let result = run_ok("import time, datetime\nresult = [time.time() > 1.7e9, datetime.datetime.now().year >= 2025]").await;
    assert_eq!(result.result, serde_json::json!([true, true]));
}

#[tokio::test]
async fn waiting_on_a_call_never_started_is_a_value_error_not_an_internal_one() {
    let result = run("import _codemode\n_codemode.call_wait(12345)").await;
    let error = result.error.expect("an error");
    assert_eq!(error.kind, "ValueError");
    assert!(
        error.message.contains("no tool call 12345"),
        "{}",
        error.message
    );
    let twice = "import _codemode\nid = _codemode.call_start('a', 'b', {})\n_codemode.call_wait(id)\n\
                 _codemode.call_wait(id)";
    assert_eq!(run(twice).await.error.expect("an error").kind, "ValueError");
    let bad_stream = run("import _codemode\n_codemode.write(7, 'x')").await;
    assert_eq!(bad_stream.error.expect("an error").kind, "ValueError");
    assert_eq!(run_ok("result = 'fine'").await.result, "fine");
}

/// The snapshot's objects are immortal (their reference counts never written, so a run dirties
/// fewer of its pages), while everything a script creates is freed as usual: `__del__` and
/// weak-reference callbacks still run for the script's own objects.
#[tokio::test]
async fn snapshot_objects_are_immortal_and_script_objects_are_not() {
    let code = "import sys, json, weakref\n\
                class Tracked:\n    def __del__(self):\n        print('freed')\n\
                t = Tracked()\n\
                seen = []\n\
                r = weakref.ref(t, lambda _: seen.append('callback'))\n\
                del t\n\
                result = {'json': sys.getrefcount(json) > 2**20, 'len': sys.getrefcount(len) > 2**20,\n\
                          'mine': sys.getrefcount(Tracked) < 100, 'seen': seen, 'dead': r() is None}\n";
    let result = run_ok(code).await;
    assert_eq!(result.stdout, "freed\n");
    assert_eq!(
        result.result,
        serde_json::json!({"json": true, "len": true, "mine": true, "seen": ["callback"], "dead": true})
    );
}
