//! `POST /v1/chat/completions` and `GET /v1/models` against provider doubles speaking the real
//! wire protocol over loopback, and the official OpenAI Python SDK as a client.

use std::sync::Arc;

use axum::http::StatusCode;
use codemode::app::App;
use codemode::config::Config;
use codemode::mcp::{InProcessTool, McpManager};
use codemode::server::router;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::support::llm::{
    ProviderDouble, Reply, body_text, chunk, completion, openai_sdk, stream_request,
};
use crate::support::{EXECUTOR, send};

/// A manager with in-process tools `a.t1`, `a.t2` and `b.t1`.
async fn tools() -> Arc<McpManager> {
    let manager = Arc::new(McpManager::new(Default::default()));
    for (client, names) in [("a", vec!["t1", "t2"]), ("b", vec!["t1"])] {
        let tools = names
            .into_iter()
            .map(|name| {
                InProcessTool::new(name, "a test tool", json!({"type": "object"}), |_| async {
                    Ok(json!("ran"))
                })
            })
            .collect();
        manager
            .add_in_process(client, tools)
            .await
            .expect("registered");
    }
    manager
}

/// The service with `providers` and the rest of `config`.
async fn app(providers: Value, mut config: Value) -> axum::Router {
    config["providers"] = providers;
    let config = Config::parse(&config.to_string()).expect("a valid config");
    let app = App::assemble(&config, tools().await, EXECUTOR.clone(), None)
        .await
        .expect("the app");
    router(Arc::new(app))
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn injected_names(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tool| tool["function"]["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_chat_request_reaches_the_provider_with_the_callers_fields_untouched() {
    let double = ProviderDouble::start().await;
    let app = app(json!({"double": double.provider_config(0)}), json!({})).await;
    let mut body = chat("double/small-1");
    body["temperature"] = json!(0.25);
    body["response_format"] = json!({"type": "json_object"});
    body["reasoning_effort"] = json!("low");
    // A field no version of the gateway knows (programmatic tool calling's `caller`).
    body["caller"] = json!({"type": "code_execution", "id": "x"});
    body["mcp-exclude-clients"] = json!(["a", "b"]);
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "hello from small-1"
    );
    assert_eq!(answer["usage"]["total_tokens"], 5);
    let extra = &answer["extra_fields"];
    assert_eq!(extra["provider"], "double");
    assert_eq!(extra["model_requested"], "double/small-1");
    assert_eq!(extra["model_used"], "double/small-1");
    assert_eq!(extra["fallback_attempts"], json!([]));
    assert!(extra["latency_ms"].as_f64().is_some());

    let received = double.received();
    assert_eq!(received.len(), 1);
    let sent = &received[0].body;
    assert_eq!(sent["model"], "small-1");
    assert_eq!(sent["temperature"], 0.25);
    assert_eq!(sent["response_format"], json!({"type": "json_object"}));
    assert_eq!(sent["reasoning_effort"], "low");
    assert_eq!(sent["caller"], json!({"type": "code_execution", "id": "x"}));
    assert!(sent.get("mcp-exclude-clients").is_none(), "{sent}");
    assert!(sent.get("tools").is_none(), "every client excluded: {sent}");
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer sk-test"));

    // Counted by provider, the model that answered and status, with the tokens reported.
    let metrics = crate::support::text(&app, "/metrics").await;
    let requests =
        r#"codemode_llm_requests_total{provider="double",model="double/small-1",status="200"} 1"#;
    assert!(metrics.contains(requests), "{metrics}");
    let prompt =
        r#"codemode_llm_tokens_total{provider="double",model="double/small-1",kind="prompt"} 3"#;
    assert!(metrics.contains(prompt), "{metrics}");
    let completion = r#"codemode_llm_tokens_total{provider="double",model="double/small-1",kind="completion"} 2"#;
    assert!(metrics.contains(completion), "{metrics}");
}

/// A key, body filters, filter headers, and the tools the provider should receive.
type InjectionCase = (
    &'static str,
    Value,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

#[tokio::test]
async fn the_callers_permitted_mcp_tools_are_added_to_its_own() {
    let double = ProviderDouble::start().await;
    let keys = json!({"governance": {"virtual_keys": [
        {"name": "a-only", "value": "vk-a", "mcp_configs": [
            {"mcp_client_name": "a", "tools_to_execute": ["t1"]}]},
        {"name": "all", "value": "vk-all", "mcp_configs": [
            {"mcp_client_name": "a", "tools_to_execute": ["*"]},
            {"mcp_client_name": "b", "tools_to_execute": ["*"]}]}
    ]}});
    let app = app(json!({"double": double.provider_config(0)}), keys).await;
    let own = json!({"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}});
    let mut body = chat("double/m");
    body["tools"] = json!([own]);

    let cases: [InjectionCase; 4] = [
        ("vk-a", json!({}), &[], &["lookup", "a-t1"]),
        (
            "vk-all",
            json!({}),
            &[],
            &["lookup", "a-t1", "a-t2", "b-t1"],
        ),
        (
            "vk-all",
            json!({"mcp-include-clients": ["b"]}),
            &[],
            &["lookup", "b-t1"],
        ),
        (
            "vk-all",
            json!({}),
            &[("x-bf-mcp-include-tools", "a-t2")],
            &["lookup", "a-t2"],
        ),
    ];
    for (key, filters, headers, expected) in cases {
        let mut request = body.clone();
        for (name, value) in filters.as_object().into_iter().flatten() {
            request[name] = value.clone();
        }
        let mut all_headers = vec![("x-bf-vk", key)];
        all_headers.extend_from_slice(headers);
        let (status, answer) =
            send(&app, "POST", "/v1/chat/completions", &all_headers, request).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let sent = double.received().pop().expect("a request").body;
        let mut names = injected_names(&sent);
        names.sort();
        let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(
            names, expected,
            "key {key}, filters {filters}, headers {headers:?}"
        );
    }

    // The request's own opt-out leaves the caller's tools alone.
    let (status, _) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        &[
            ("x-bf-vk", "vk-all"),
            ("x-bf-mcp-disable-auto-tool-inject", "true"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let sent = double.received().pop().expect("a request").body;
    assert_eq!(injected_names(&sent), ["lookup"]);

    // A name clash is refused, naming the tool, before any upstream call.
    let before = double.received().len();
    let mut clash = chat("double/m");
    clash["tools"] = json!([{"type": "function", "function": {"name": "a-t1"}}]);
    let (status, answer) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "vk-a")],
        clash,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("tools[0]: a-t1"), "{message}");
    assert_eq!(double.received().len(), before);
}

#[tokio::test]
async fn tool_injection_can_be_turned_off_for_the_whole_gateway() {
    let double = ProviderDouble::start().await;
    let config = json!({"mcp": {"tool_manager_config": {"disable_auto_tool_inject": true}}});
    let app = app(json!({"double": double.provider_config(0)}), config).await;
    let (status, _) = send(&app, "POST", "/v1/chat/completions", &[], chat("double/m")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(double.received()[0].body.get("tools").is_none());
}

#[tokio::test]
async fn a_failing_provider_is_retried_then_the_fallbacks_are_tried_in_order() {
    let primary = ProviderDouble::start().await;
    let second = ProviderDouble::start().await;
    let third = ProviderDouble::start().await;
    let down = || {
        Reply::Json(
            503,
            json!({"error": {"message": "overloaded", "type": "server_error"}}),
        )
    };
    primary.reply(down()).reply(down()).reply(down());
    second.reply(Reply::Json(429, json!({"error": {"message": "slow down"}})));
    second.reply(Reply::Json(429, json!({"error": {"message": "slow down"}})));
    second.reply(Reply::Json(429, json!({"error": {"message": "slow down"}})));
    let providers = json!({
        "primary": primary.provider_config(2),
        "second": second.provider_config(2),
        "third": third.provider_config(0),
    });
    let app = app(providers, json!({})).await;
    let mut body = chat("primary/big");
    body["fallbacks"] = json!(["second/medium", "third/small"]);
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "hello from small"
    );
    assert_eq!(primary.received().len(), 3, "one attempt and two retries");
    assert_eq!(second.received().len(), 3);
    assert!(third.received()[0].body.get("fallbacks").is_none());
    let extra = &answer["extra_fields"];
    assert_eq!(extra["provider"], "third");
    assert_eq!(extra["model_requested"], "primary/big");
    assert_eq!(extra["model_used"], "third/small");
    let attempts: Vec<(String, u64)> = extra["fallback_attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| {
            (
                a["model"].as_str().unwrap_or_default().to_string(),
                a["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            ("primary/big".to_string(), 503),
            ("second/medium".to_string(), 429)
        ]
    );
}

#[tokio::test]
async fn a_429_is_retried_inside_the_provider() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Json(429, json!({"error": {"message": "slow down"}})));
    let app = app(json!({"double": double.provider_config(1)}), json!({})).await;
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], chat("double/m")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(double.received().len(), 2);
    assert_eq!(answer["extra_fields"]["fallback_attempts"], json!([]));
}

#[tokio::test]
async fn when_every_target_fails_the_primarys_error_is_answered() {
    let primary = ProviderDouble::start().await;
    let second = ProviderDouble::start().await;
    primary.reply(Reply::Json(
        500,
        json!({"error": {"message": "primary broke"}}),
    ));
    second.reply(Reply::Json(
        502,
        json!({"error": {"message": "second broke"}}),
    ));
    let providers =
        json!({"primary": primary.provider_config(0), "second": second.provider_config(0)});
    let app = app(providers, json!({})).await;
    let mut body = chat("primary/m");
    body["fallbacks"] = json!(["second/m"]);
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], body).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("primary broke"), "{message}");
    assert_eq!(
        answer["extra_fields"]["fallback_attempts"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn a_providers_refusal_keeps_its_status_and_shape_and_is_not_retried() {
    let primary = ProviderDouble::start().await;
    let fallback = ProviderDouble::start().await;
    primary.reply(Reply::Json(
        400,
        json!({"error": {"message": "context too long for sk-test", "type": "invalid_request_error",
                         "code": "context_length_exceeded"}}),
    ));
    let providers =
        json!({"primary": primary.provider_config(3), "fallback": fallback.provider_config(0)});
    let app = app(providers, json!({})).await;
    let mut body = chat("primary/m");
    body["fallbacks"] = json!(["fallback/m"]);
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["type"], "invalid_request_error");
    assert_eq!(answer["error"]["code"], "context_length_exceeded");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("context too long"), "{message}");
    assert!(
        !message.contains("sk-test"),
        "the key is never echoed: {message}"
    );
    assert_eq!(answer["extra_fields"]["provider"], "primary");
    assert_eq!(primary.received().len(), 1, "a refusal is not retried");
    assert!(fallback.received().is_empty(), "nor sent elsewhere");
}

#[tokio::test]
async fn requests_that_cannot_succeed_fail_before_any_upstream_call() {
    let double = ProviderDouble::start().await;
    let mut config = double.provider_config(0);
    config["keys"] = json!([{"value": "sk-test", "models": ["gpt-*"]}]);
    let app = app(json!({"double": config}), json!({})).await;
    let cases = [
        (chat("nowhere/m"), "unknown provider nowhere"),
        (
            chat("no-slash"),
            "model: \"no-slash\" is not <provider>/<model>",
        ),
        (
            chat("double/claude-x"),
            "no key of provider double serves model claude-x",
        ),
        (json!({"messages": []}), "model: required"),
        (json!([1, 2]), "the body is not a JSON object"),
        (
            json!({"model": "double/gpt-x", "fallbacks": "nowhere/m"}),
            "fallbacks: must be a list",
        ),
        (
            json!({"model": "double/gpt-x", "fallbacks": ["nowhere/m"]}),
            "unknown provider nowhere",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{message}");
    }
    assert!(double.received().is_empty());
}

#[tokio::test]
async fn a_stream_is_forwarded_chunk_by_chunk_to_done() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Stream(vec![chunk("Hel"), chunk("lo")]));
    let app = app(json!({"double": double.provider_config(0)}), json!({})).await;
    let mut body = chat("double/m");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = stream_request(app, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-codemode-provider"], "double");
    let text = body_text(response).await;
    let data: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .collect();
    assert_eq!(data.len(), 3, "{text}");
    assert_eq!(data[2], "[DONE]");
    let first: Value = serde_json::from_str(data[0]).expect("a chunk");
    assert_eq!(first["choices"][0]["delta"]["content"], "Hel");
    let sent = &double.received()[0].body;
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn a_caller_that_leaves_a_stream_cancels_the_upstream_request() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::StreamHeld(vec![chunk("first")]));
    let app = app(json!({"double": double.provider_config(0)}), json!({})).await;
    let mut body = chat("double/m");
    body["stream"] = json!(true);
    let response = stream_request(app, &body).await;
    let mut body = response.into_body();
    let frame = body.frame().await.expect("a frame").expect("bytes");
    let first = String::from_utf8_lossy(frame.data_ref().expect("data")).into_owned();
    assert!(first.contains("first"), "{first}");
    drop(body);
    // Bounded, not a synchronisation: the double notices as soon as the connection closes.
    tokio::time::timeout(std::time::Duration::from_secs(10), double.caller_left())
        .await
        .expect("the upstream request was dropped with the caller");
}

#[tokio::test]
async fn models_lists_what_the_providers_serve() {
    let double = ProviderDouble::start().await;
    let mut offline = double.provider_config(0);
    offline["network_config"]["base_url"] = json!("http://127.0.0.1:9/v1");
    offline["keys"] = json!([{"value": "k", "models": ["named-model", "pattern-*"]}]);
    let app = app(
        json!({"double": double.provider_config(0), "offline": offline}),
        json!({}),
    )
    .await;
    let (status, listing) = send(&app, "GET", "/v1/models", &[], Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = listing["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "double/double-small",
            "double/double-large",
            "offline/named-model"
        ]
    );
}

#[tokio::test]
async fn the_openai_python_sdk_talks_to_codemode() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Json(200, completion("m", "plain answer")));
    double.reply(Reply::Stream(vec![chunk("str"), chunk("eamed")]));
    let keys = json!({"governance": {"virtual_keys": [{"name": "sdk", "value": "vk-sdk",
        "mcp_configs": [{"mcp_client_name": "a", "tools_to_execute": ["t1"]}]}]}});
    let app = app(json!({"double": double.provider_config(0)}), keys).await;
    let script = r#"
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="vk-sdk", max_retries=0)
plain = client.chat.completions.create(model="double/m", messages=[{"role": "user", "content": "hi"}])
stream = client.chat.completions.create(model="double/m", messages=[{"role": "user", "content": "hi"}], stream=True)
streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
models = [m.id for m in client.models.list()]
try:
    client.chat.completions.create(model="nowhere/m", messages=[{"role": "user", "content": "hi"}])
    error = None
except openai.BadRequestError as e:
    error = [type(e).__name__, e.status_code, e.body["message"] if isinstance(e.body, dict) else str(e.body)]
try:
    openai.OpenAI(base_url=sys.argv[1], api_key="wrong", max_retries=0).models.list()
    denied = None
except openai.AuthenticationError as e:
    denied = e.status_code
print(json.dumps({"plain": plain.choices[0].message.content, "usage": plain.usage.total_tokens,
                  "streamed": streamed, "models": models, "error": error, "denied": denied}))
"#;
    let report = openai_sdk(app, script).await;
    assert_eq!(report["plain"], "plain answer");
    assert_eq!(report["usage"], 5);
    assert_eq!(report["streamed"], "streamed");
    assert_eq!(
        report["models"],
        json!(["double/double-small", "double/double-large"])
    );
    assert_eq!(report["error"][0], "BadRequestError");
    assert_eq!(report["error"][1], 400);
    let message = report["error"][2].as_str().unwrap_or_default();
    assert!(message.contains("unknown provider nowhere"), "{message}");
    assert_eq!(report["denied"], 401);
    // The SDK's requests carried the caller's permitted tool.
    assert_eq!(injected_names(&double.received()[0].body), ["a-t1"]);
}

// -- Anthropic Messages ------------------------------------------------------------------------

#[tokio::test]
async fn an_anthropic_provider_is_spoken_to_in_its_own_protocol() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Json(
        200,
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "rust"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 2, "output_tokens": 7}
        }),
    ));
    let app = app(
        json!({"claude": double.provider_config_speaking("anthropic", 0)}),
        json!({"mcp": {"tool_manager_config": {"disable_auto_tool_inject": true}}}),
    )
    .await;
    let body = json!({
        "model": "claude/claude-x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"png\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_0", "content": "an image format"},
            {"role": "user", "content": "And rust?"}
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Looks up",
                   "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "stop": "END",
        "temperature": 0.5,
        "reasoning_effort": "low"
    });
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let received = &double.received()[0];
    assert_eq!(received.path, "/v1/messages");
    assert_eq!(received.anthropic.0.as_deref(), Some("sk-test"));
    assert_eq!(received.anthropic.1.as_deref(), Some("2023-06-01"));
    assert_eq!(received.authorization, None);
    assert_eq!(
        received.body,
        json!({
            "model": "claude-x",
            "system": "Be brief.",
            "max_tokens": 4096,
            "temperature": 0.5,
            "stop_sequences": ["END"],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_0", "name": "lookup", "input": {"q": "png"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_0", "content": "an image format"},
                    {"type": "text", "text": "And rust?"}
                ]}
            ],
            "tools": [{"name": "lookup", "description": "Looks up",
                       "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
        })
    );

    let choice = &answer["choices"][0];
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(choice["message"]["content"], "Let me look.");
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_1");
    assert_eq!(call["function"]["name"], "lookup");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().expect("a string"))
            .expect("JSON");
    assert_eq!(arguments, json!({"q": "rust"}));
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19})
    );
    assert_eq!(answer["extra_fields"]["provider"], "claude");
}

#[tokio::test]
async fn an_anthropic_stream_becomes_openai_chunks_as_it_arrives() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Events(vec![
        json!({"type": "message_start", "message": {"id": "msg_2", "model": "claude-x",
               "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1,
               "content_block": {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"q\":"}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"x\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ]));
    let app = app(
        json!({"claude": double.provider_config_speaking("anthropic", 0)}),
        json!({}),
    )
    .await;
    let mut body = chat("claude/claude-x");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = stream_request(app, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = body_text(response).await;
    let data: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("a chunk"))
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == "msg_2")
    );
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|c| &c["delta"])
        .collect();
    assert_eq!(deltas[0], &json!({"role": "assistant", "content": ""}));
    let content: String = deltas
        .iter()
        .filter_map(|d| d["content"].as_str())
        .collect();
    assert_eq!(content, "Hello");
    let calls: Vec<&Value> = deltas
        .iter()
        .filter_map(|d| d["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["id"], "toolu_9");
    assert_eq!(calls[0]["function"]["name"], "lookup");
    let arguments: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"q\":\"x\"}");
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|c| &c["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("tool_calls")]);
    let usage = &chunks.last().expect("a usage chunk")["usage"];
    assert_eq!(
        usage,
        &json!({"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14})
    );
}

#[tokio::test]
async fn an_anthropic_error_keeps_its_status_and_type() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::Json(
        429,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
    ));
    let app = app(
        json!({"claude": double.provider_config_speaking("anthropic", 0)}),
        json!({}),
    )
    .await;
    let (status, answer) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        &[],
        chat("claude/claude-x"),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["error"]["type"], "rate_limit_error");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("slow down")
    );
}

#[tokio::test]
async fn a_keys_provider_and_model_restriction_holds_before_any_upstream_call() {
    let double = ProviderDouble::start().await;
    let other = ProviderDouble::start().await;
    let keys = json!({"governance": {"virtual_keys": [
        {"name": "limited", "value": "vk-l", "provider_configs": [
            {"provider": "double", "allowed_models": ["small-*"], "weight": 1.0}]},
        {"name": "any", "value": "vk-any"}
    ]}});
    let providers = json!({"double": double.provider_config(0), "other": other.provider_config(0)});
    let app = app(providers, keys).await;
    let limited = [("x-bf-vk", "vk-l")];
    let (status, answer) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        &limited,
        chat("double/small-1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut with_fallback = chat("double/small-1");
    with_fallback["fallbacks"] = json!(["other/x"]);
    for body in [chat("double/large"), chat("other/small-1"), with_fallback] {
        let (status, answer) = send(&app, "POST", "/v1/chat/completions", &limited, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert_eq!(answer["error"]["type"], "permission_error");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.ends_with("is not allowed for virtual key limited"),
            "{message}"
        );
    }
    let (status, _) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "vk-any")],
        chat("other/x"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(double.received().len(), 1);
    assert_eq!(other.received().len(), 1);
}

#[tokio::test]
async fn providers_are_managed_through_the_api_redacted_and_persisted() {
    let double = ProviderDouble::start().await;
    let db = tempfile::tempdir().expect("temp dir");
    let path = db.path().join("codemode.db");
    let file = json!({"providers": {"file": {
        "custom_provider_config": {"base_provider_type": "openai"},
        "network_config": {"base_url": double.base_url},
        "keys": [{"value": "sk-literal-secret", "models": ["*"]}]}}});
    let start = || async {
        let config = Config::parse(&file.to_string()).expect("config");
        let store = codemode::store::Store::open(&path).expect("store");
        let app = App::assemble(&config, tools().await, EXECUTOR.clone(), Some(store))
            .await
            .expect("app");
        router(Arc::new(app))
    };
    let app = start().await;
    let (status, listing) = send(&app, "GET", "/api/providers", &[], Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listing["providers"][0]["name"], "file");
    assert_eq!(listing["providers"][0]["keys"][0]["value"], "<redacted>");
    assert!(!listing.to_string().contains("sk-literal-secret"));

    let mut added = double.provider_config(0);
    added["name"] = json!("added");
    added["keys"] = json!([{"value": "env.CODEMODE_TEST_UNSET_KEY", "models": ["*"]}]);
    let (status, answer) = send(&app, "POST", "/api/providers", &[], added.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = send(&app, "POST", "/api/providers", &[], added.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A literal secret is refused through the API, and a provider it cannot reach too.
    let mut literal = added.clone();
    literal["name"] = json!("literal");
    literal["keys"] = json!([{"value": "sk-plain"}]);
    let (status, answer) = send(&app, "POST", "/api/providers", &[], literal).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("keys[0].value: must be an env.NAME reference"),
        "{message}"
    );
    let (status, _) = send(
        &app,
        "POST",
        "/api/providers",
        &[],
        json!({"name": "nowhere"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The added provider's key names an unset variable: a clear 503, nothing sent.
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &[], chat("added/m")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(double.received().is_empty());
    // Edited to need no key, it answers.
    let mut keyless = double.provider_config(0);
    keyless["keys"] = json!([]);
    let (status, _) = send(&app, "PUT", "/api/providers/added", &[], keyless).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&app, "POST", "/v1/chat/completions", &[], chat("added/m")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(double.received()[0].authorization, None);
    let (status, _) = send(&app, "DELETE", "/api/providers/file", &[], Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&app, "DELETE", "/api/providers/file", &[], Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    drop(app);

    // After a restart over the same file and database, the API's changes win.
    let app = start().await;
    let (_, listing) = send(&app, "GET", "/api/providers", &[], Value::Null).await;
    let names: Vec<&str> = listing["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["added"]);
    assert_eq!(listing["providers"][0]["keys"], json!([]));
}

#[tokio::test]
async fn llm_requests_are_audited_and_the_tool_calls_they_ask_for_are_linked() {
    let double = ProviderDouble::start().await;
    let mut answer = completion("m", "");
    answer["choices"][0]["message"]["tool_calls"] = json!([{"id": "call_7", "type": "function",
        "function": {"name": "a-t1", "arguments": "{}"}}]);
    answer["choices"][0]["finish_reason"] = json!("tool_calls");
    double.reply(Reply::Json(200, answer));
    double.reply(Reply::Json(500, json!({"error": {"message": "down"}})));
    let db = tempfile::tempdir().expect("temp dir");
    let store = codemode::store::Store::open(&db.path().join("audit.db")).expect("store");
    let keys = json!({"governance": {"virtual_keys": [{"name": "agent", "value": "vk-agent",
        "mcp_configs": [{"mcp_client_name": "a", "tools_to_execute": ["*"]}]}]}});
    let mut config = keys;
    config["providers"] = json!({"double": double.provider_config(0)});
    let config = Config::parse(&config.to_string()).expect("config");
    let app = router(Arc::new(
        App::assemble(&config, tools().await, EXECUTOR.clone(), Some(store))
            .await
            .expect("app"),
    ));
    let key = [("x-bf-vk", "vk-agent")];
    let (status, answer) = send(&app, "POST", "/v1/chat/completions", &key, chat("double/m")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let request_id = answer["extra_fields"]["request_id"]
        .as_str()
        .expect("an id")
        .to_string();
    let call = answer["choices"][0]["message"]["tool_calls"][0].clone();
    let (status, _) = send(&app, "POST", "/v1/mcp/tool/execute", &key, call).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&app, "POST", "/v1/chat/completions", &key, chat("double/m")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    let (_, llm) = send(&app, "GET", "/api/logs/llm?vk=agent", &[], Value::Null).await;
    assert_eq!(llm["total"], 2, "{llm}");
    let (failed, served) = (&llm["logs"][0], &llm["logs"][1]);
    assert_eq!(served["request_id"], request_id.as_str());
    assert_eq!(served["provider"], "double");
    assert_eq!(served["model_requested"], "double/m");
    assert_eq!(served["model_used"], "double/m");
    assert_eq!(served["status"], 200);
    assert_eq!(served["prompt_tokens"], 3);
    assert_eq!(served["completion_tokens"], 2);
    assert_eq!(served["tool_call_ids"], json!(["call_7"]));
    assert_eq!(failed["status"], 500);
    assert_eq!(failed["model_used"], Value::Null);
    assert!(
        !llm.to_string().contains("hi"),
        "no content is recorded: {llm}"
    );

    let (_, tools) = send(&app, "GET", "/api/logs?vk=agent", &[], Value::Null).await;
    assert_eq!(tools["logs"][0]["tool"], "t1");
    assert_eq!(tools["logs"][0]["parent_execution_id"], request_id.as_str());
}

#[tokio::test]
async fn a_stream_that_breaks_ends_with_an_error_event() {
    let double = ProviderDouble::start().await;
    double.reply(Reply::StreamBroken(vec![chunk("partial")]));
    let app = app(json!({"double": double.provider_config(0)}), json!({})).await;
    let mut body = chat("double/m");
    body["stream"] = json!(true);
    let response = stream_request(app, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let frame = body.frame().await.expect("a frame").expect("bytes");
    let first = String::from_utf8_lossy(frame.data_ref().expect("data")).into_owned();
    assert!(first.contains("partial"), "{first}");
    double.break_stream();
    let rest = body.collect().await.expect("the rest").to_bytes();
    let text = format!("{first}{}", String::from_utf8_lossy(&rest));
    let data: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .collect();
    let last: Value = serde_json::from_str(data.last().expect("an event")).expect("JSON");
    assert_eq!(last["error"]["type"], "api_error", "{text}");
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn the_key_is_chosen_among_those_that_serve_the_model() {
    let double = ProviderDouble::start().await;
    let mut config = double.provider_config(0);
    config["keys"] = json!([
        {"name": "small", "value": "sk-small", "models": ["small-*"], "weight": 1.0},
        {"name": "large", "value": "sk-large", "models": ["large-*", "huge"], "weight": 3.0}
    ]);
    let app = app(json!({"double": config}), json!({})).await;
    for (model, key) in [
        ("small-1", "sk-small"),
        ("large-2", "sk-large"),
        ("huge", "sk-large"),
    ] {
        let (status, _) = send(
            &app,
            "POST",
            "/v1/chat/completions",
            &[],
            chat(&format!("double/{model}")),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let sent = double.received().pop().expect("a request");
        assert_eq!(sent.authorization, Some(format!("Bearer {key}")), "{model}");
    }
}
