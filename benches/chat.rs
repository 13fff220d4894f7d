//! Chat overhead (issue 12): one non-streaming `POST /v1/chat/completions` sent straight to a
//! local OpenAI-protocol double, through a plain proxy that only forwards the bytes (the cost of
//! any extra HTTP hop), and through codemode (routing, key choice, tool injection, the forward,
//! `extra_fields`). Codemode's own work is the difference between the last two.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use axum::Json;
use axum::routing::post;
use codemode::app::App;
use codemode::config::Config;
use codemode::executor::{Executor, ExecutorConfig};
use codemode::mcp::McpManager;
use codemode::server::serve;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn chat(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (double, proxy, codemode) = runtime.block_on(async {
        let double = double().await;
        let proxy = plain_proxy(double.clone()).await;
        let config = json!({"providers": {"double": {
            "custom_provider_config": {"base_provider_type": "openai"},
            "network_config": {"base_url": double},
            "keys": [{"value": "sk-bench", "models": ["*"]}]}}});
        let config = Config::parse(&config.to_string()).expect("config");
        let executor = Executor::new(ExecutorConfig::default()).expect("sandbox");
        let manager = Arc::new(McpManager::new(Default::default()));
        let state = Arc::new(
            App::assemble(&config, manager, executor, None)
                .await
                .expect("state"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let codemode = format!("http://{}/v1", listener.local_addr().expect("address"));
        tokio::spawn(serve(listener, state, std::future::pending()));
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

criterion_group!(benches, chat);
criterion_main!(benches);
