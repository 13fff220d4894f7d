//! Chat overhead (issue 12): one non-streaming `POST /v1/chat/completions` sent straight to a
//! local OpenAI-protocol double, through a plain proxy that only forwards the bytes (the cost of
//! any extra HTTP hop), and through codemode (routing, key choice, tool injection, the forward,
//! `extra_fields`). Codemode's own work is the difference between the last two.
//!
//! Agent mode (issue 13): `agent/one_round` is a request in which the model asks for an
//! auto-executable in-process tool, codemode runs it and asks again (two model calls);
//! `agent/one_model_call` is the same service answering in one model call. One iteration costs
//! `one_round - one_model_call`; less `chat/direct` (one model call), that is the loop's own
//! cost (the in-process tool costs microseconds).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use axum::Json;
use axum::routing::post;
use codemode::app::App;
use codemode::config::Config;
use codemode::executor::{Executor, ExecutorConfig};
use codemode::mcp::{InProcessTool, McpManager};
use codemode::server::serve;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

/// Serves `app` on a loopback port; answers its `/v1` base URL.
async fn listen(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// codemode over `manager`, with the provider at `double`, on a loopback port; answers its
/// `/v1` base URL.
async fn codemode(double: &str, manager: Arc<McpManager>) -> String {
    let config = json!({"providers": {"double": {
        "custom_provider_config": {"base_provider_type": "openai"},
        "network_config": {"base_url": double},
        "keys": [{"value": "sk-bench", "models": ["*"]}]}}});
    let config = Config::parse(&config.to_string()).expect("config");
    let executor = Executor::new(ExecutorConfig::default()).expect("sandbox");
    let state = Arc::new(
        App::assemble(&config, manager, executor, None)
            .await
            .expect("state"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("address"));
    tokio::spawn(serve(listener, state, std::future::pending()));
    base
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A provider that answers every request at once with a small completion.
async fn double() -> String {
    let answer = json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    });
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |Json(_): Json<Value>| {
            let answer = answer.clone();
            async move { Json(answer) }
        }),
    );
    listen(app).await
}

/// A proxy that forwards the body to `upstream` and answers the bytes it got: an extra hop and
/// nothing else.
async fn plain_proxy(upstream: String) -> String {
    let client = reqwest::Client::new();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::body::Bytes| {
            let (client, upstream) = (client.clone(), upstream.clone());
            async move {
                let answer = client
                    .post(format!("{upstream}/chat/completions"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("forwarded");
                answer.bytes().await.expect("answer")
            }
        }),
    );
    listen(app).await
}

fn chat(c: &mut Criterion) {
    let runtime = runtime();
    let (double, proxy, codemode) = runtime.block_on(async {
        let double = double().await;
        let proxy = plain_proxy(double.clone()).await;
        let manager = Arc::new(McpManager::new(Default::default()));
        let codemode = codemode(&double, manager).await;
        (double, proxy, codemode)
    });
    let client = reqwest::Client::new();
    let messages = json!([{"role": "user", "content": "hi"}]);
    let send = |url: String, model: &'static str| {
        let (client, messages) = (client.clone(), messages.clone());
        async move {
            let response = client
                .post(format!("{url}/chat/completions"))
                .json(&json!({"model": model, "messages": messages}))
                .send()
                .await
                .expect("sent");
            assert!(response.status().is_success());
            response.bytes().await.expect("body")
        }
    };
    let mut group = c.benchmark_group("chat");
    group.bench_function("direct", |b| {
        b.to_async(&runtime).iter(|| send(double.clone(), "m"));
    });
    group.bench_function("through_plain_proxy", |b| {
        b.to_async(&runtime).iter(|| send(proxy.clone(), "m"));
    });
    group.bench_function("through_codemode", |b| {
        b.to_async(&runtime)
            .iter(|| send(codemode.clone(), "double/m"));
    });
    group.finish();
}

/// A provider that asks for `a-t1` unless the conversation ends with a tool result.
async fn agent_double() -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|Json(body): Json<Value>| async move {
            let last = body["messages"].as_array().and_then(|m| m.last()).cloned();
            let message = if last.is_some_and(|m| m["role"] == "tool") {
                json!({"role": "assistant", "content": "ok"})
            } else {
                json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1",
                    "type": "function", "function": {"name": "a-t1", "arguments": "{}"}}]})
            };
            Json(json!({
                "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
            }))
        }),
    );
    listen(app).await
}

fn agent(c: &mut Criterion) {
    let runtime = runtime();
    let codemode = runtime.block_on(async {
        let double = agent_double().await;
        let manager = Arc::new(McpManager::new(Default::default()));
        let tool = InProcessTool::new("t1", "a tool", json!({"type": "object"}), |_| async {
            Ok(json!("done"))
        });
        manager.add_in_process("a", vec![tool]).await.expect("a");
        let mut client = manager.config("a").await.expect("config");
        client.tools_to_auto_execute = vec!["*".into()];
        manager.replace("a", client).await.expect("auto");
        codemode(&double, manager).await
    });
    let client = reqwest::Client::new();
    let asks = json!([{"role": "user", "content": "hi"}]);
    let answered = json!([{"role": "user", "content": "hi"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c0", "type": "function",
            "function": {"name": "a-t1", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c0", "content": "done"}]);
    let send = |messages: Value| {
        let (client, url) = (client.clone(), codemode.clone());
        async move {
            let response = client
                .post(format!("{url}/chat/completions"))
                .json(&json!({"model": "double/m", "messages": messages}))
                .send()
                .await
                .expect("sent");
            assert!(response.status().is_success());
            let answer: Value = response.json().await.expect("body");
            assert_eq!(answer["choices"][0]["message"]["content"], "ok", "{answer}");
        }
    };
    let mut group = c.benchmark_group("agent");
    group.bench_function("one_model_call", |b| {
        b.to_async(&runtime).iter(|| send(answered.clone()));
    });
    group.bench_function("one_round", |b| {
        b.to_async(&runtime).iter(|| send(asks.clone()));
    });
    group.finish();
}

criterion_group!(benches, chat, agent);
criterion_main!(benches);
