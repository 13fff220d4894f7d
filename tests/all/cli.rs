//! `codemode run`: output, the result JSON, exit codes and the one stderr line.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn codemode(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_codemode"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("codemode starts");
    // A command that fails on its flags exits without reading stdin: a broken pipe is expected.
    let written = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    assert!(
        written.is_ok()
            || written
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe),
        "{written:?}"
    );
    child.wait_with_output().expect("codemode exits")
}

fn script(code: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".py")
        .tempfile()
        .expect("temp file");
    file.write_all(code.as_bytes()).expect("write script");
    file
}

fn last_json_line(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().expect("a result line");
    serde_json::from_str(line).expect("the last line is JSON")
}

fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_successful_script_prints_output_then_the_result() {
    let file = script("print('hello')\nresult = 6 * 7\n");
    let output = codemode(&["run", file.path().to_str().expect("utf-8 path")], "");
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("hello\n"), "{stdout}");
    let result = last_json_line(&output);
    assert_eq!(result["ok"], true);
    assert_eq!(result["result"], 42);
}

#[test]
fn a_script_can_come_from_stdin() {
    let output = codemode(&["run", "-"], "result = 'piped'");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(last_json_line(&output)["result"], "piped");
}

#[test]
fn a_python_error_exits_1_with_one_line() {
    let output = codemode(&["run", "-"], "x = 1\nraise ValueError('bad value')\n");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr_lines(&output),
        ["codemode: ValueError: bad value (line 2)"]
    );
    assert_eq!(last_json_line(&output)["error"]["type"], "ValueError");
}

#[test]
fn a_limit_exits_2() {
    let output = codemode(&["run", "-", "--timeout-ms", "200"], "while True: pass");
    assert_eq!(output.status.code(), Some(2));
    let lines = stderr_lines(&output);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("codemode: TimeoutError:"), "{lines:?}");
}

#[test]
fn memory_limit_flag_is_applied() {
    let output = codemode(
        &["run", "-", "--memory-mb", "80"],
        "x = bytearray(100 << 20)",
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(last_json_line(&output)["error"]["type"], "MemoryError");
}

#[test]
fn usage_errors_exit_64() {
    let missing = codemode(&["run", "/nonexistent/script.py"], "");
    assert_eq!(missing.status.code(), Some(64));
    assert_eq!(stderr_lines(&missing).len(), 1);
    let over = codemode(&["run", "-", "--timeout-ms", "999999999"], "1");
    assert_eq!(over.status.code(), Some(64));
    assert!(stderr_lines(&over)[0].contains("timeout_ms"));
    let unknown = codemode(&["run", "-", "--bogus"], "1");
    assert_eq!(unknown.status.code(), Some(64));
}

#[test]
fn check_reports_every_problem_then_fails() {
    let config = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        config.path(),
        r#"{"mcp": {"client_configs": [
          {"name": "1bad", "connection_type": "stdio", "stdio_config": {"command": "x"}},
          {"name": "web", "connection_type": "http"},
          {"name": "dup", "connection_type": "stdio", "stdio_config": {"command": "x"}, "colour": 1},
          {"name": "dup", "connection_type": "stdio", "stdio_config": {"command": "x"}},
          {"name": "dup", "connection_type": "stdio", "stdio_config": {"command": "x"}}
        ]}}"#,
    )
    .expect("write config");
    let path = config.path().display().to_string();
    let output = codemode(&["check", "--config", &path], "");
    assert_eq!(output.status.code(), Some(64));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let errors: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        errors,
        vec![
            "error: mcp.client_configs[0].name: \"1bad\" must not start with a digit",
            "error: mcp.client_configs[1].connection_string: required for an http or sse client",
            "error: mcp.client_configs[2].colour: unknown field `colour`, expected one of `name`, `connection_type`, `stdio_config`, `connection_string`, `headers`, `tools_to_execute`, `tools_to_skip`, `tools_to_auto_execute`, `is_code_mode_client`, `tool_execution_timeout`, `auth_type`, `oauth_config`",
            "error: mcp.client_configs[4].name: duplicate client name \"dup\"",
        ]
    );
    assert_eq!(
        stderr_lines(&output),
        vec![format!("codemode: {path}: 4 error(s)")]
    );
}

#[test]
fn serve_refuses_a_network_address_when_nothing_asks_for_keys() {
    let db = tempfile::tempdir().expect("temp dir");
    let db = db.path().join("codemode.db");
    let db = db.to_str().expect("utf-8 path");
    let output = codemode(
        &["serve", "--host", "0.0.0.0", "--port", "0", "--db", db],
        "",
    );
    assert_eq!(output.status.code(), Some(64));
    let lines = stderr_lines(&output);
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("codemode: refusing to serve on 0.0.0.0")),
        "{lines:?}"
    );
}

#[test]
fn analyze_prints_the_tools_a_script_can_call_without_running_it() {
    let plain = codemode(&["analyze", "-"], "import json\nprint(json.dumps(1))\n");
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let analysis: serde_json::Value = serde_json::from_slice(&plain.stdout).expect("JSON");
    assert_eq!(analysis, serde_json::json!({"tools": []}));
    assert!(
        String::from_utf8_lossy(&plain.stdout).find("1\n").is_none(),
        "nothing ran"
    );

    let hidden = codemode(&["analyze", "-"], "exec('x = 1')\n");
    assert!(hidden.status.success());
    let analysis: serde_json::Value = serde_json::from_slice(&hidden.stdout).expect("JSON");
    assert_eq!(analysis["unknown"]["line"], 1);
    assert!(
        analysis["unknown"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("exec"))
    );

    let missing = codemode(&["analyze", "/nonexistent/script.py"], "");
    assert_eq!(missing.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
