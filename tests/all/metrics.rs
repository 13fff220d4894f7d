//! `GET /metrics`: scraped after known traffic, the counters say what was done, and the text
//! parses with the Prometheus project's own Python parser.

use serde_json::{Value, json};

use crate::support::servers::venv_python;
use crate::support::stdio_client;

async fn post(url: &str, body: Value) -> u16 {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("answer")
        .status()
        .as_u16()
}

fn call(name: &str, arguments: Value) -> Value {
    json!({"id": "1", "type": "function",
           "function": {"name": name, "arguments": arguments.to_string()}})
}

/// The value of the sample `name{labels}` in `text`, where `labels` is the exact label text.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_what_was_done_and_parse_as_prometheus_text() {
    let base = crate::mcp_server::start(
        vec![stdio_client(
            "everything",
            "server-everything",
            &["stdio"],
            &[],
        )],
        json!({}),
    )
    .await;
    let execute = format!("{base}/v1/mcp/tool/execute");
    for text in ["a", "b"] {
        let status = post(&execute, call("everything-echo", json!({"message": text}))).await;
        assert_eq!(status, 200);
    }
    // A name nobody configured is counted, but never becomes a label.
    assert_eq!(
        post(&execute, call("everything-made-up", json!({}))).await,
        404
    );
    let code = format!("{base}/v1/code/execute");
    assert_eq!(post(&code, json!({"code": "print(1 + 1)"})).await, 200);
    assert_eq!(
        post(
            &code,
            json!({"code": "class Mine(Exception): pass\nraise Mine()"})
        )
        .await,
        200
    );
    let spin = json!({"code": "while True: pass", "limits": {"timeout_ms": 100}});
    assert_eq!(post(&code, spin).await, 200);

    let response = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");

    let calls = "codemode_tool_calls_total";
    assert_eq!(
        sample(
            &text,
            calls,
            r#"client="everything",tool="echo",outcome="ok""#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            calls,
            r#"client="other",tool="other",outcome="error""#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("made-up"), "{text}");
    let runs = "codemode_executions_total";
    assert_eq!(
        sample(&text, runs, r#"outcome="ok",limit="none""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, runs, r#"outcome="ScriptError",limit="none""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, runs, r#"outcome="TimeoutError",limit="timeout_ms""#),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("Mine"), "{text}");
    assert_eq!(
        sample(&text, "codemode_execution_peak_memory_bytes_count", ""),
        None,
        "a label-less histogram is written without braces"
    );
    assert!(
        text.contains("codemode_execution_peak_memory_bytes_count 3"),
        "{text}"
    );
    let requests = "codemode_http_requests_total";
    assert_eq!(
        sample(&text, requests, r#"route="/v1/code/execute",status="200""#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            requests,
            r#"route="/v1/mcp/tool/execute",status="404""#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "codemode_client_state",
            r#"client="everything",state="connected""#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "codemode_sandbox_slots_busy", "").or(Some(0.0)),
        Some(0.0)
    );
    assert!(text.contains("codemode_sandbox_queue_depth 0"), "{text}");

    // The Prometheus project's parser reads it all.
    let parsed = tokio::process::Command::new(venv_python())
        .args([
            "-c",
            "import sys\nfrom prometheus_client.parser import text_string_to_metric_families\n\
             families = list(text_string_to_metric_families(sys.stdin.read()))\n\
             print(sum(len(f.samples) for f in families))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    let mut child = parsed;
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).await.expect("write");
    }
    let output = child.wait_with_output().await.expect("parser ran");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let samples: usize = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("a count");
    assert!(samples > 20, "{samples}");
}
