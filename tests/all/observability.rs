//! Traces: spans exported over OTLP/HTTP to a real receiver (decoding with the OpenTelemetry
//! project's `opentelemetry-proto`), joined to the caller's trace by its `traceparent`, with the
//! tool call a child of the HTTP request, and the tool call's context carried on to an HTTP
//! upstream (header and `_meta`, read by a server of the official Python SDK).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::process::Codemode;
use crate::support::servers::{server_script, venv_python};

#[tokio::test]
async fn spans_reach_an_otlp_receiver_inside_the_callers_trace() {
    let receiver_script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/otlp/receiver.py");
    let mut receiver = Command::new(venv_python())
        .arg(receiver_script)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the receiver starts");
    let mut lines = BufReader::new(receiver.stdout.take().expect("stdout")).lines();
    let port = lines.next().expect("a port").expect("a line");

    let upstream_script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/servers/python/trace_context.py");
    let mut upstream = Command::new(venv_python())
        .arg(upstream_script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the upstream starts");
    let upstream_port = BufReader::new(upstream.stdout.take().expect("stdout"))
        .lines()
        .next()
        .expect("a port")
        .expect("a line");

    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("codemode.json");
    let everything = json!({"name": "everything", "connection_type": "stdio",
        "stdio_config": {"command": "node", "args": [server_script("server-everything"), "stdio"]}});
    let traced = json!({"name": "traced", "connection_type": "http",
        "connection_string": format!("http://127.0.0.1:{upstream_port}/mcp")});
    std::fs::write(
        &config,
        json!({"observability": {"otlp_endpoint": format!("http://127.0.0.1:{port}")},
               "mcp": {"client_configs": [everything, traced]}})
        .to_string(),
    )
    .expect("config");
    let codemode = Codemode::start(&config, &dir.path().join("codemode.db"));

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let call = json!({"id": "1", "type": "function",
        "function": {"name": "everything-echo", "arguments": "{\"message\": \"traced\"}"}});
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/mcp/tool/execute", codemode.base))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&call)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 200);
    let call = json!({"id": "2", "type": "function",
        "function": {"name": "traced-trace_context", "arguments": "{}"}});
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/v1/mcp/tool/execute", codemode.base))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&call)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    let seen: Value = serde_json::from_str(answer["content"].as_str().unwrap_or_default())
        .unwrap_or_else(|_| panic!("the upstream's answer: {answer}"));
    let script = json!({"code": "everything.echo(message='from a script')"});
    let run = reqwest::Client::new()
        .post(format!("{}/v1/code/execute", codemode.base))
        .json(&script)
        .send()
        .await
        .expect("answer");
    assert_eq!(run.status(), 200);
    // SIGTERM: the service flushes its spans before it exits.
    codemode.terminate();
    let _ = Command::new("kill")
        .args(["-TERM", &receiver.id().to_string()])
        .status();
    let spans: Vec<Value> = lines
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect();
    let _ = receiver.wait();
    let _ = upstream.kill();
    let _ = upstream.wait();

    // The HTTP upstream got the tool call's own context, as a header and in `_meta`.
    let upstream_call = spans
        .iter()
        .find(|s| s["name"] == "tool_call" && s["attributes"]["tool"] == "trace_context")
        .unwrap_or_else(|| panic!("no span of the traced call in {spans:?}"));
    let expected = format!(
        "00-{trace_id}-{}-01",
        upstream_call["span_id"].as_str().unwrap_or_default()
    );
    assert_eq!(seen["header"], expected, "{seen}");
    assert_eq!(seen["meta"], expected, "{seen}");

    let request = spans
        .iter()
        .find(|s| s["name"] == "POST /v1/mcp/tool/execute")
        .unwrap_or_else(|| panic!("no request span in {spans:?}"));
    assert_eq!(request["trace_id"], trace_id, "{request}");
    assert_eq!(request["parent_span_id"], caller_span, "{request}");
    let status = &request["attributes"]["http.response.status_code"];
    assert_eq!(number(status), Some(200.0), "{request}");
    let tool_call = spans
        .iter()
        .find(|s| s["name"] == "tool_call")
        .unwrap_or_else(|| panic!("no tool call span in {spans:?}"));
    assert_eq!(tool_call["trace_id"], trace_id);
    assert_eq!(
        tool_call["parent_span_id"], request["span_id"],
        "{tool_call}"
    );
    assert_eq!(tool_call["attributes"]["client"], "everything");
    assert_eq!(tool_call["attributes"]["tool"], "echo");
    assert_eq!(tool_call["attributes"]["outcome"], "ok");

    // A script's span is its request's child, and its tool calls are the script's.
    let script_request = spans
        .iter()
        .find(|s| s["name"] == "POST /v1/code/execute")
        .unwrap_or_else(|| panic!("no script request span in {spans:?}"));
    let execution = spans
        .iter()
        .find(|s| s["name"] == "execution")
        .unwrap_or_else(|| panic!("no execution span in {spans:?}"));
    assert_eq!(execution["parent_span_id"], script_request["span_id"]);
    assert_eq!(
        number(&execution["attributes"]["calls"]),
        Some(1.0),
        "{execution}"
    );
    let script_call = spans
        .iter()
        .find(|s| s["name"] == "tool_call" && s["parent_span_id"] == execution["span_id"]);
    assert!(
        script_call.is_some(),
        "no tool call under the execution: {spans:?}"
    );
}

/// A numeric attribute's value: fields recorded after their span began arrive as text.
fn number(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
}
