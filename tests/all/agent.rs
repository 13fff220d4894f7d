//! Agent mode: chat requests in which the gateway runs the tools it may run on its own, against
//! the provider double over loopback (OpenAI and Anthropic, complete and streamed), in-process
//! tools for the loop's mechanics, and the real filesystem and memory servers for code mode.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use codemode::app::App;
use codemode::config::{Config, ToolManagerConfig};
use codemode::mcp::{InProcessTool, McpManager};
use codemode::server::router;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::support::llm::{
    ProviderDouble, Reply, body_text, chunk, completion, openai_sdk, stream_request, tool_calls,
};
use crate::support::{EXECUTOR, send, stdio_client};

/// How long a tool waits for its partner before it concludes it runs alone.
const MEETING: Duration = Duration::from_secs(20);

/// A manager with in-process tools: `a.t1` and `a.t2` answer `ran <name>`; `a.slow1` and
/// `a.slow2` each wait at one barrier for the other (answering `met`, or `alone` when the other
/// never comes); `b.t1` answers `ran b`. `auto` are the tools of `a` agent mode may run.
async fn tools(depth: u32, auto: &[&str]) -> Arc<McpManager> {
    let settings = ToolManagerConfig {
        max_agent_depth: depth,
        ..ToolManagerConfig::default()
    };
    let manager = Arc::new(McpManager::new(settings));
    let barrier = Arc::new(Barrier::new(2));
    let mut a = Vec::new();
    for name in ["t1", "t2"] {
        a.push(InProcessTool::new(
            name,
            "a tool",
            json!({"type": "object"}),
            move |_| async move { Ok(json!(format!("ran {name}"))) },
        ));
    }
    for name in ["slow1", "slow2"] {
        let barrier = Arc::clone(&barrier);
        a.push(InProcessTool::new(
            name,
            "meets its partner",
            json!({"type": "object"}),
            move |_| {
                let barrier = Arc::clone(&barrier);
                async move {
                    match tokio::time::timeout(MEETING, barrier.wait()).await {
                        Ok(_) => Ok(json!("met")),
                        Err(_) => Ok(json!("alone")),
                    }
                }
            },
        ));
    }
    manager.add_in_process("a", a).await.expect("a");
    let b = vec![InProcessTool::new(
        "t1",
        "b tool",
        json!({"type": "object"}),
        |_| async { Ok(json!("ran b")) },
    )];
    manager.add_in_process("b", b).await.expect("b");
    let mut config = manager.config("a").await.expect("a's config");
    config.tools_to_auto_execute = auto.iter().map(|s| s.to_string()).collect();
    manager.replace("a", config).await.expect("auto tools set");
    manager
}

/// The service over `manager`, with the double as provider `double` (speaking `protocol`) and
/// an audit store in `db`.
async fn service(
    manager: Arc<McpManager>,
    double: &ProviderDouble,
    protocol: &str,
    db: &tempfile::TempDir,
) -> axum::Router {
    let config = json!({"providers": {"double": double.provider_config_speaking(protocol, 0)}});
    let config = Config::parse(&config.to_string()).expect("config");
    let store = codemode::store::Store::open(&db.path().join("audit.db")).expect("store");
    let app = App::assemble(&config, manager, EXECUTOR.clone(), Some(store))
        .await
        .expect("app");
    router(Arc::new(app))
}

fn chat() -> Value {
    json!({"model": "double/m", "messages": [{"role": "user", "content": "go"}]})
}

/// The audit log's records, oldest first.
async fn audit(app: &axum::Router) -> Vec<Value> {
    let (status, logs) = send(app, "GET", "/api/logs?limit=100", &[], Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    let mut records = logs["logs"].as_array().cloned().unwrap_or_default();
    records.reverse();
    records
}

#[tokio::test]
async fn auto_executable_calls_run_and_the_model_is_asked_again() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Json(200, tool_calls(&[("c1", "a-t1", json!({}))])));
    double.reply(Reply::Json(200, completion("m", "all done")));
    let db = tempfile::tempdir().expect("dir");
    let app = service(tools(10, &["t1"]).await, &double, "openai", &db).await;

    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], chat()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "all done");
    // Usage summed over both model calls.
    assert_eq!(answer["usage"]["prompt_tokens"], 6);
    assert_eq!(answer["usage"]["completion_tokens"], 4);
    assert_eq!(answer["usage"]["total_tokens"], 10);

    let received = double.received();
    assert_eq!(received.len(), 2);
    let messages = received[1].body["messages"]
        .as_array()
        .cloned()
        .expect("messages");
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "c1");
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": "c1", "content": "ran t1"})
    );

    let request_id = answer["extra_fields"]["request_id"].as_str().expect("id");
    let records = audit(&app).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["tool"], "t1");
    assert_eq!(records[0]["parent_execution_id"], request_id);
    assert_eq!(records[0]["iteration"], 1);
}

#[tokio::test]
async fn the_loop_stops_at_the_depth_limit_with_the_answer_as_it_is() {
    let double = ProviderDouble::start().await;
    for i in 0..10 {
        double.reply(Reply::Json(
            200,
            tool_calls(&[(&format!("c{i}"), "a-t1", json!({}))]),
        ));
    }
    let db = tempfile::tempdir().expect("dir");
    let app = service(tools(3, &["*"]).await, &double, "openai", &db).await;
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], chat()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Three rounds of tools, so four model calls; the fourth answer comes back untouched.
    assert_eq!(double.received().len(), 4);
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(answer["choices"][0]["message"]["tool_calls"][0]["id"], "c3");
    let iterations: Vec<Value> = audit(&app)
        .await
        .iter()
        .map(|r| r["iteration"].clone())
        .collect();
    assert_eq!(iterations, [json!(1), json!(2), json!(3)]);
}

#[tokio::test]
async fn the_auto_calls_of_one_turn_run_in_parallel() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Json(
        200,
        tool_calls(&[("s1", "a-slow1", json!({})), ("s2", "a-slow2", json!({}))]),
    ));
    double.reply(Reply::Json(200, completion("m", "both met")));
    let db = tempfile::tempdir().expect("dir");
    let app = service(tools(10, &["slow1", "slow2"]).await, &double, "openai", &db).await;
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], chat()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let messages = double.received()[1].body["messages"].clone();
    // Each tool only answers `met` if the other one ran at the same time.
    assert_eq!(messages[2]["content"], "met", "{messages}");
    assert_eq!(messages[3]["content"], "met", "{messages}");
    let records = audit(&app).await;
    let span = |r: &Value| {
        let start = r["at_ms"].as_f64().expect("start");
        (start, start + r["latency_ms"].as_f64().expect("latency"))
    };
    let (first, second) = (span(&records[0]), span(&records[1]));
    // The records' start times have millisecond resolution.
    assert!(
        first.0 <= second.1 + 1.0 && second.0 <= first.1 + 1.0,
        "{records:?}"
    );
}

#[tokio::test]
async fn calls_that_need_approval_come_back_with_the_results_of_those_that_ran() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Json(
        200,
        tool_calls(&[
            ("c1", "a-t1", json!({})),
            ("c2", "a-t2", json!({"x": 1})),
            ("c3", "my_own_tool", json!({})),
        ]),
    ));
    let db = tempfile::tempdir().expect("dir");
    let app = service(tools(10, &["t1"]).await, &double, "openai", &db).await;
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], chat()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(double.received().len(), 1);
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        choice["message"]["content"],
        "The Output from allowed tools calls is - {\"a-t1\":\"ran t1\"}\n\nNow I shall call these tools next..."
    );
    let pending: Vec<&str> = choice["message"]["tool_calls"]
        .as_array()
        .expect("pending calls")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(pending, ["c2", "c3"]);
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"x\":1}"
    );
    // The app approves a pending call through the execute endpoint, which never asks.
    let call = choice["message"]["tool_calls"][0].clone();
    let (status, output) = send(&app, "POST", "/v1/mcp/tool/execute", &[], call).await;
    assert_eq!(status, StatusCode::OK, "{output}");
    assert_eq!(output["content"], "ran t2");
}

#[tokio::test]
async fn with_nothing_auto_executable_the_first_answer_is_returned_unchanged() {
    let double = ProviderDouble::start().await;
    let asked = tool_calls(&[("c1", "b-t1", json!({}))]);
    double.reply(Reply::Json(200, asked.clone()));
    let db = tempfile::tempdir().expect("dir");
    let app = service(tools(10, &["*"]).await, &double, "openai", &db).await;
    let (status, mut answer) = send(&app, "POST", "/v1/chat/completions", &[], chat()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
        .as_object_mut()
        .expect("object")
        .remove("extra_fields");
    assert_eq!(answer, asked);
    assert!(audit(&app).await.is_empty(), "nothing ran");
}

/// A streamed turn: text, a tool call in two argument pieces, the finish, then usage.
pub(crate) fn streamed_turn(text: &str, call: Option<(&str, &str)>, finish: &str) -> Vec<Value> {
    let base = |choices: Value| {
        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
               "model": "m", "choices": choices})
    };
    let mut chunks = vec![base(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""},
                                      "finish_reason": null}]),
    )];
    chunks.push(chunk(text));
    if let Some((id, name)) = call {
        chunks.push(base(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": id,
            "type": "function", "function": {"name": name, "arguments": "{\"q\":"}}]},
            "finish_reason": null}]),
        ));
        chunks.push(base(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0,
            "function": {"arguments": "1}"}}]}, "finish_reason": null}]),
        ));
    }
    chunks.push(base(
        json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
    ));
    let mut usage = base(json!([]));
    usage["usage"] = json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5});
    chunks.push(usage);
    chunks
}

/// The `data:` payloads of a stream, and its comment lines.
pub(crate) fn stream_parts(text: &str) -> (Vec<Value>, Vec<String>) {
    let mut chunks = Vec::new();
    let mut comments = Vec::new();
    for line in text.lines() {
        if let Some(data) = line.strip_prefix("data: ") {
            chunks.push(serde_json::from_str(data).unwrap_or(json!(data)));
        } else if line.starts_with(':') {
            comments.push(line.to_string());
        }
    }
    (chunks, comments)
}

#[tokio::test]
async fn a_streamed_agent_loop_continues_in_the_same_stream() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Stream(streamed_turn(
        "Let me look. ",
        Some(("c1", "a-t1")),
        "tool_calls",
    )));
    double.reply(Reply::Stream(streamed_turn("It ran.", None, "stop")));
    let db = tempfile::tempdir().expect("dir");
    let app = service(tools(10, &["t1"]).await, &double, "openai", &db).await;
    let mut body = chat();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = stream_request(app, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = body_text(response).await;
    let (chunks, comments) = stream_parts(&text);

    assert_eq!(chunks.last(), Some(&json!("[DONE]")), "{text}");
    assert_eq!(chunks.iter().filter(|c| **c == json!("[DONE]")).count(), 1);
    let deltas: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"].get(0)).collect();
    let roles = deltas
        .iter()
        .filter(|c| c["delta"].get("role").is_some())
        .count();
    assert_eq!(roles, 1, "one role chunk: {text}");
    let content: String = deltas
        .iter()
        .filter_map(|c| c["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Let me look. It ran.");
    assert!(
        deltas
            .iter()
            .all(|c| c["delta"].get("tool_calls").is_none()),
        "the call that ran is not shown as pending: {text}"
    );
    let finishes: Vec<&Value> = deltas
        .iter()
        .map(|c| &c["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, [&json!("stop")]);
    let usage: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
    assert_eq!(usage.len(), 1, "{text}");
    assert_eq!(usage[0]["usage"]["total_tokens"], 10);
    assert_eq!(comments, [": codemode: running a-t1"]);
    let messages = double.received()[1].body["messages"].clone();
    assert_eq!(messages[1]["content"], "Let me look. ");
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["arguments"],
        "{\"q\":1}"
    );
    assert_eq!(messages[2]["content"], "ran t1");
}

#[tokio::test]
async fn a_streamed_call_that_needs_approval_is_released_as_the_model_sent_it() {
    let double = ProviderDouble::start().await;
    let turn = streamed_turn("Asking. ", Some(("c9", "a-t2")), "tool_calls");
    double.reply(Reply::Stream(turn.clone()));
    let db = tempfile::tempdir().expect("dir");
    let app = service(tools(10, &["t1"]).await, &double, "openai", &db).await;
    let mut body = chat();
    body["stream"] = json!(true);
    let text = body_text(stream_request(app, &body).await).await;
    let (chunks, comments) = stream_parts(&text);
    let mut expected = turn;
    expected.push(json!("[DONE]"));
    assert_eq!(chunks, expected, "{text}");
    assert!(comments.is_empty());
    assert_eq!(double.received().len(), 1);
}

#[tokio::test]
async fn an_anthropic_provider_runs_the_agent_loop_too() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Json(
        200,
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "a-t1", "input": {}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 7, "output_tokens": 3}
        }),
    ));
    double.reply(Reply::Json(
        200,
        json!({
            "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Done."}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 11, "output_tokens": 2}
        }),
    ));
    double.reply(Reply::Events(vec![
        json!({"type": "message_start", "message": {"id": "msg_3", "model": "claude-x",
               "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "tool_use", "id": "toolu_2", "name": "a-t1", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}}),
        json!({"type": "message_stop"}),
    ]));
    double.reply(Reply::Events(vec![
        json!({"type": "message_start", "message": {"id": "msg_4", "model": "claude-x",
               "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Streamed done."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
        json!({"type": "message_stop"}),
    ]));
    let db = tempfile::tempdir().expect("dir");
    let app = service(tools(10, &["t1"]).await, &double, "anthropic", &db).await;
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], chat()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "Done.");
    assert_eq!(answer["usage"]["prompt_tokens"], 18);
    let second = &double.received()[1].body;
    assert_eq!(second["messages"][1]["content"][1]["type"], "tool_use");
    let result = &second["messages"][2]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], "toolu_1");

    let mut body = chat();
    body["stream"] = json!(true);
    let text = body_text(stream_request(app, &body).await).await;
    let (chunks, comments) = stream_parts(&text);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Streamed done.", "{text}");
    assert_eq!(comments, [": codemode: running a-t1"]);
    assert_eq!(
        double.received()[3].body["messages"][2]["content"][0]["tool_use_id"],
        "toolu_2"
    );
}

#[tokio::test]
async fn the_openai_python_sdk_drives_an_agent_loop() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Json(200, tool_calls(&[("c1", "a-t1", json!({}))])));
    double.reply(Reply::Json(200, completion("m", "sdk done")));
    double.reply(Reply::Stream(streamed_turn(
        "Streaming. ",
        Some(("c2", "a-t1")),
        "tool_calls",
    )));
    double.reply(Reply::Stream(streamed_turn("Streamed.", None, "stop")));
    let db = tempfile::tempdir().expect("dir");
    let app = service(tools(10, &["t1"]).await, &double, "openai", &db).await;
    let script = r#"
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="none", max_retries=0)
messages = [{"role": "user", "content": "go"}]
plain = client.chat.completions.create(model="double/m", messages=messages)
stream = client.chat.completions.create(model="double/m", messages=messages, stream=True)
parts = [c.choices[0].delta.content or "" for c in stream if c.choices]
print(json.dumps({"plain": plain.choices[0].message.content, "calls": plain.choices[0].message.tool_calls,
                  "usage": plain.usage.total_tokens, "streamed": "".join(parts)}))
"#;
    let report = openai_sdk(app, script).await;
    assert_eq!(
        report,
        json!({"plain": "sdk done", "calls": null, "usage": 10,
                              "streamed": "Streaming. Streamed."})
    );
}

// -- code mode ----------------------------------------------------------------------------------

/// The service over the real filesystem server (rooted at `root`) and memory server, both
/// code-mode clients whose read tools alone are auto-executable.
async fn code_mode_service(
    double: &ProviderDouble,
    root: &std::path::Path,
    db: &tempfile::TempDir,
) -> axum::Router {
    let mut filesystem = stdio_client(
        "filesystem",
        "server-filesystem",
        &[&root.display().to_string()],
        &[],
    );
    filesystem["is_code_mode_client"] = json!(true);
    filesystem["tools_to_auto_execute"] = json!(["read_text_file", "list_directory"]);
    let mut memory = stdio_client("memory", "server-memory", &[], &[]);
    memory["is_code_mode_client"] = json!(true);
    memory["tools_to_auto_execute"] = json!(["read_graph", "search_nodes"]);
    let config = json!({
        "providers": {"double": double.provider_config(0)},
        "mcp": {"client_configs": [filesystem, memory]},
    });
    let config = Config::parse(&config.to_string()).expect("config");
    let manager = Arc::new(McpManager::start(&config.mcp).await);
    let store = codemode::store::Store::open(&db.path().join("audit.db")).expect("store");
    let app = App::assemble(&config, manager, EXECUTOR.clone(), Some(store))
        .await
        .expect("app");
    router(Arc::new(app))
}

/// Asks for `executeToolCode` with `code`; the chat answer and how many model calls it took.
async fn execute_tool_code(
    app: &axum::Router,
    double: &ProviderDouble,
    code: &str,
) -> (Value, usize) {
    let before = double.received().len();
    double.reply(Reply::Json(
        200,
        tool_calls(&[("x1", "executeToolCode", json!({"code": code}))]),
    ));
    double.reply(Reply::Json(200, completion("m", "script ran")));
    let (status, answer) = send(app, "POST", "/v1/chat/completions", &[], chat()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    (answer, double.received().len() - before)
}

#[tokio::test]
async fn a_script_auto_runs_only_when_every_tool_it_can_reach_may() {
    let double = ProviderDouble::start().await;
    let root = tempfile::tempdir().expect("dir");
    let root_path = root.path().canonicalize().expect("root");
    std::fs::write(root_path.join("notes.txt"), "hello notes").expect("a file");
    let db = tempfile::tempdir().expect("dir");
    let app = code_mode_service(&double, &root_path, &db).await;

    // Reads only: runs on its own, its output reaches the model.
    let file = root_path.join("notes.txt").display().to_string();
    let read =
        format!("print(filesystem.read_text_file(path={file:?}))\nprint(memory.read_graph())");
    let (answer, asked) = execute_tool_code(&app, &double, &read).await;
    assert_eq!(asked, 2, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "script ran");
    let received = double.received();
    let output = received.last().expect("second call").body["messages"][2]["content"].clone();
    assert!(
        output.as_str().is_some_and(|o| o.contains("hello notes")),
        "{output}"
    );

    let target = root_path.join("written.txt").display().to_string();
    let writes = [
        format!("filesystem.write_file(path={target:?}, content='x')"),
        format!("w = filesystem.write_file\nw(path={target:?}, content='x')"),
        format!("getattr(filesystem, 'write_' + 'file')(path={target:?}, content='x')"),
        format!("exec('filesystem.write_file(path={target:?}, content=\"x\")')"),
        "from servers import memory as m\nm.create_entities(entities=[{'name': 'n', 'entityType': 't', 'observations': []}])".to_string(),
        "import servers.memory as m\nm.create_entities_async(entities=[{'name': 'n', 'entityType': 't', 'observations': []}]).result()".to_string(),
        format!("import _codemode\n_codemode.call_tool('filesystem', 'write_file', {{'path': {target:?}, 'content': 'x'}})"),
        format!("import codemode\ncodemode.call_tool('filesystem', 'write_file', {{'path': {target:?}, 'content': 'x'}})"),
    ];
    for code in &writes {
        let (answer, asked) = execute_tool_code(&app, &double, code).await;
        assert_eq!(asked, 1, "{code} must not run on its own: {answer}");
        let call = &answer["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "executeToolCode", "{answer}");
        // Consume the unused second reply by a plain request.
        let (status, _) = send(&app, "POST", "/v1/chat/completions", &[], chat()).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(!root_path.join("written.txt").exists(), "no write happened");
    let (status, graph) = send(
        &app,
        "POST",
        "/v1/code/execute",
        &[],
        json!({"code": "result = memory.read_graph()"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{graph}");
    assert!(
        !graph["result"].to_string().contains("\"n\""),
        "the graph is unchanged: {graph}"
    );
}

#[tokio::test]
async fn the_analysis_names_the_tools_or_says_why_it_cannot() {
    let double = ProviderDouble::start().await;
    let root = tempfile::tempdir().expect("dir");
    let db = tempfile::tempdir().expect("dir");
    let app = code_mode_service(&double, root.path(), &db).await;
    let tools = |list: &[(&str, &str)]| -> Value {
        json!(
            list.iter()
                .map(|(c, t)| json!({"client": c, "tool": t}))
                .collect::<Vec<_>>()
        )
    };
    let known = [
        (
            "filesystem.read_text_file(path='a')",
            tools(&[("filesystem", "read_text_file")]),
        ),
        (
            "r = filesystem.read_text_file\nr(path='a')",
            tools(&[("filesystem", "read_text_file")]),
        ),
        (
            "fs = filesystem\nfs.list_directory_async(path='.').result()",
            tools(&[("filesystem", "list_directory")]),
        ),
        (
            "getattr(memory, 'read_graph')()",
            tools(&[("memory", "read_graph")]),
        ),
        (
            "from servers import memory as m\nm.search_nodes(query='x')",
            tools(&[("memory", "search_nodes")]),
        ),
        (
            "from servers.memory import read_graph as g\ng()",
            tools(&[("memory", "read_graph")]),
        ),
        (
            "import codemode\ncodemode.call_tool('memory', 'read_graph')",
            tools(&[("memory", "read_graph")]),
        ),
        (
            "import json, math\nprint(json.dumps([math.pi]))",
            tools(&[]),
        ),
        ("def f(:\n", tools(&[])),
    ];
    for (code, expected) in known {
        let (status, analysis) =
            send(&app, "POST", "/v1/code/analyze", &[], json!({"code": code})).await;
        assert_eq!(status, StatusCode::OK, "{analysis}");
        assert!(analysis.get("unknown").is_none(), "{code}: {analysis}");
        assert_eq!(analysis["tools"], expected, "{code}");
    }
    let unknown = [
        ("getattr(filesystem, name)()", 1),
        ("x = 1\nexec('filesystem.write_file(path=1)')", 2),
        ("print(filesystem)", 1),
        ("servers_list = [filesystem]", 1),
        ("import sys\nsys.modules['servers.filesystem']", 1),
        ("import _codemode", 1),
        ("filesystem.read_text_file.__class__", 1),
        ("vars(filesystem)", 1),
        ("class A:\n    fs = filesystem\n", 2),
        ("import importlib", 1),
        ("f = lambda s=memory: s", 1),
        ("(1).__class__.__subclasses__()", 1),
    ];
    for (code, line) in unknown {
        let (status, analysis) =
            send(&app, "POST", "/v1/code/analyze", &[], json!({"code": code})).await;
        assert_eq!(status, StatusCode::OK, "{analysis}");
        assert_eq!(analysis["unknown"]["line"], line, "{code}: {analysis}");
        assert!(
            analysis["unknown"]["reason"]
                .as_str()
                .is_some_and(|r| !r.is_empty())
        );
    }
}

#[tokio::test]
async fn a_wrong_analysis_still_cannot_reach_a_tool_that_needs_approval() {
    // The backstop alone: a script run by agent mode is narrowed to the tools it was judged
    // to reach; here it was judged to reach only `t1` but calls `t2`.
    let manager = tools(10, &["t1"]).await;
    let mut config = manager.config("a").await.expect("config");
    config.is_code_mode_client = true;
    manager.replace("a", config).await.expect("code mode");
    let db = tempfile::tempdir().expect("dir");
    let store = codemode::store::Store::open(&db.path().join("audit.db")).expect("store");
    let app = App::assemble(&Config::default(), manager, EXECUTOR.clone(), Some(store))
        .await
        .expect("app");
    let origin = codemode::gateway::Origin {
        parent: Some("chat-1".into()),
        iteration: Some(1),
        script_tools: Some(HashSet::from([("a".to_string(), "t1".to_string())])),
    };
    let code =
        "print(a.t1())\ntry:\n    a.t2()\nexcept PermissionError as e:\n    print('denied:', e)";
    let answer = app
        .gateway
        .call_from(
            &codemode::policy::Permit::open(),
            "executeToolCode",
            json!({"code": code}),
            None,
            origin,
        )
        .await
        .expect("the script ran");
    let text = answer.into_value().expect("text").to_string();
    assert!(text.contains("ran t1"), "{text}");
    assert!(text.contains("denied:"), "{text}");
    let app = router(Arc::new(app));
    let records = audit(&app).await;
    let outcomes: Vec<(Value, Value)> = records
        .iter()
        .map(|r| (r["tool"].clone(), r["outcome"].clone()))
        .collect();
    assert_eq!(
        outcomes,
        [(json!("t1"), json!("ok")), (json!("t2"), json!("denied"))]
    );
    assert!(
        records
            .iter()
            .all(|r| r["parent_execution_id"] == "chat-1" && r["iteration"] == 1)
    );
}

// -- property: nothing that needs approval runs without it -------------------------------------

/// How a script reaches a tool of `fs`.
#[derive(Debug, Clone, Copy)]
enum Form {
    Plain,
    Async,
    ToolAlias,
    ServerAlias,
    Getattr,
    GetattrComputed,
    Exec,
    ImportAlias,
    ModuleAlias,
    Bridge,
    CallByName,
    Lambda,
    InContainer,
}

impl Form {
    const ALL: [Form; 13] = [
        Form::Plain,
        Form::Async,
        Form::ToolAlias,
        Form::ServerAlias,
        Form::Getattr,
        Form::GetattrComputed,
        Form::Exec,
        Form::ImportAlias,
        Form::ModuleAlias,
        Form::Bridge,
        Form::CallByName,
        Form::Lambda,
        Form::InContainer,
    ];

    /// A statement calling `fs.<tool>` this way (`n` keeps names apart).
    fn statement(self, tool: &str, n: usize) -> String {
        let (head, tail) = tool.split_at(2);
        match self {
            Form::Plain => format!("fs.{tool}()"),
            Form::Async => format!("fs.{tool}_async().result()"),
            Form::ToolAlias => format!("t{n} = fs.{tool}\nt{n}()"),
            Form::ServerAlias => format!("s{n} = fs\ns{n}.{tool}()"),
            Form::Getattr => format!("getattr(fs, {tool:?})()"),
            Form::GetattrComputed => format!("getattr(fs, {head:?} + {tail:?})()"),
            Form::Exec => format!("exec('fs.{tool}()')"),
            Form::ImportAlias => format!("from servers import fs as f{n}\nf{n}.{tool}()"),
            Form::ModuleAlias => format!("import servers.fs as m{n}\nm{n}.{tool}()"),
            Form::Bridge => format!("import _codemode\n_codemode.call_tool('fs', {tool:?}, {{}})"),
            Form::CallByName => format!("import codemode\ncodemode.call_tool('fs', {tool:?})"),
            Form::Lambda => format!("(lambda: fs.{tool}())()"),
            Form::InContainer => format!("[fs][0].{tool}()"),
        }
    }

    /// Whether the analysis follows this form exactly.
    fn followed(self) -> bool {
        !matches!(
            self,
            Form::GetattrComputed | Form::Exec | Form::Bridge | Form::InContainer
        )
    }
}

/// One generated script: its statements as `(form, writes)`.
fn script() -> impl proptest::strategy::Strategy<Value = Vec<(Form, bool)>> {
    use proptest::prelude::*;
    proptest::collection::vec((0..Form::ALL.len(), any::<bool>()), 1..4)
        .prop_map(|parts| parts.into_iter().map(|(i, w)| (Form::ALL[i], w)).collect())
}

/// The in-process code-mode client `fs`: `read` may run on its own, `write` may not; every
/// `write` that runs is counted.
async fn read_write_service(
    double: &ProviderDouble,
    writes: Arc<std::sync::atomic::AtomicUsize>,
) -> axum::Router {
    let manager = Arc::new(McpManager::new(ToolManagerConfig::default()));
    let read = InProcessTool::new("read", "reads", json!({"type": "object"}), |_| async {
        Ok(json!("read"))
    });
    let write = InProcessTool::new("write", "writes", json!({"type": "object"}), move |_| {
        let writes = Arc::clone(&writes);
        async move {
            writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(json!("wrote"))
        }
    });
    manager
        .add_in_process("fs", vec![read, write])
        .await
        .expect("fs");
    let mut config = manager.config("fs").await.expect("config");
    config.is_code_mode_client = true;
    config.tools_to_auto_execute = vec!["read".into()];
    manager.replace("fs", config).await.expect("code mode");
    let config = json!({"providers": {"double": double.provider_config(0)}});
    let config = Config::parse(&config.to_string()).expect("config");
    let app = App::assemble(&config, manager, EXECUTOR.clone(), None)
        .await
        .expect("app");
    router(Arc::new(app))
}

async fn check_script(parts: Vec<(Form, bool)>) {
    let code: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(n, (form, write))| form.statement(if *write { "write" } else { "read" }, n))
        .collect();
    let code = code.join("\n");
    let double = ProviderDouble::start().await;
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = read_write_service(&double, Arc::clone(&writes)).await;
    double.reply(Reply::Json(
        200,
        tool_calls(&[("x", "executeToolCode", json!({"code": code}))]),
    ));
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], chat()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let ran = double.received().len() == 2;
    assert_eq!(
        writes.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a write ran:\n{code}"
    );
    let writes_any = parts.iter().any(|(_, write)| *write);
    let followed = parts.iter().all(|(form, _)| form.followed());
    assert_eq!(
        ran,
        !writes_any && followed,
        "auto-run {ran} for:\n{code}\n{answer}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, .. proptest::prelude::ProptestConfig::default() })]

    /// Scripts mixing reads (auto-executable) and writes (not) in every form: a script runs on
    /// its own exactly when it only reads in forms the analysis follows, and no write ever runs
    /// without approval.
    #[test]
    fn no_tool_that_needs_approval_runs_without_it(parts in script()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(check_script(parts));
    }
}

// -- configuration -------------------------------------------------------------------------------

#[tokio::test]
async fn agent_settings_are_checked_edited_through_the_api_and_persisted() {
    for depth in [0, 51] {
        let config = json!({"mcp": {"client_configs": [],
            "tool_manager_config": {"max_agent_depth": depth}}});
        let error = Config::parse(&config.to_string()).expect_err("out of range");
        assert!(error.to_string().contains("max_agent_depth"), "{error}");
    }
    let db = tempfile::tempdir().expect("dir");
    let path = db.path().join("codemode.db");
    let build = || async {
        let config = Config::parse(r#"{"mcp": {"tool_manager_config": {"max_agent_depth": 4}}}"#)
            .expect("config");
        let app = App::build(&config, codemode::app::StoreChoice::Sqlite(path.clone()))
            .await
            .expect("app");
        router(Arc::new(app))
    };
    let app = build().await;
    let (_, settings) = send(&app, "GET", "/api/mcp/settings", &[], Value::Null).await;
    assert_eq!(settings, json!({"max_agent_depth": 4}));
    for bad in [
        json!({"max_agent_depth": 0}),
        json!({"max_agent_depth": 51}),
        json!({"depth": 3}),
    ] {
        let (status, error) = send(&app, "PUT", "/api/mcp/settings", &[], bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert_eq!(error["error"]["type"], "invalid_request", "{error}");
    }
    let (status, settings) = send(
        &app,
        "PUT",
        "/api/mcp/settings",
        &[],
        json!({"max_agent_depth": 7}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings, json!({"max_agent_depth": 7}));
    drop(app);
    let app = build().await;
    let (_, settings) = send(&app, "GET", "/api/mcp/settings", &[], Value::Null).await;
    assert_eq!(
        settings,
        json!({"max_agent_depth": 7}),
        "the API's change wins on restart"
    );
}

#[tokio::test]
async fn tools_to_auto_execute_is_edited_like_the_other_tool_lists() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Json(200, tool_calls(&[("c1", "a-t2", json!({}))])));
    double.reply(Reply::Json(200, tool_calls(&[("c2", "a-t2", json!({}))])));
    double.reply(Reply::Json(200, completion("m", "ran it")));
    let db = tempfile::tempdir().expect("dir");
    let app = service(tools(10, &["t1"]).await, &double, "openai", &db).await;
    let (_, answer) = send(&app, "POST", "/v1/chat/completions", &[], chat()).await;
    assert_eq!(
        answer["choices"][0]["message"]["tool_calls"][0]["id"], "c1",
        "t2 waits"
    );
    let edit = json!({"tools_to_auto_execute": ["t1", "t2"]});
    let (status, body) = send(&app, "PUT", "/api/mcp/client/a", &[], edit).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, answer) = send(&app, "POST", "/v1/chat/completions", &[], chat()).await;
    assert_eq!(
        answer["choices"][0]["message"]["content"], "ran it",
        "{answer}"
    );
}
