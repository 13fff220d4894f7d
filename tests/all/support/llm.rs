//! An LLM provider test double: an HTTP server on loopback speaking OpenAI's chat-completions
//! protocol and Anthropic's Messages protocol (complete answers and event streams) and
//! `GET /v1/models`, answering from a script each test writes, and recording every request it
//! received.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::ServiceExt;

/// One scripted answer.
pub enum Reply {
    /// A status and a JSON body.
    Json(u16, Value),
    /// A 200 event stream of these `chat.completion.chunk` events, then `[DONE]`.
    Stream(Vec<Value>),
    /// A 200 event stream of these events that then stays open until the caller leaves.
    StreamHeld(Vec<Value>),
    /// A 200 event stream of Anthropic events, each named by its `type`.
    Events(Vec<Value>),
    /// A 200 event stream of these chunks whose connection breaks when the test says so
    /// ([`ProviderDouble::break_stream`]).
    StreamBroken(Vec<Value>),
}

/// A request the double received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path called.
    pub path: String,
    /// `Authorization`, when sent.
    pub authorization: Option<String>,
    /// `x-api-key` and `anthropic-version`, when sent.
    pub anthropic: (Option<String>, Option<String>),
    /// The JSON body.
    pub body: Value,
}

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
    /// Notified when a held stream's caller went away.
    left: Notify,
    /// Notified by the test to break a stream.
    breaks: Notify,
}

/// A running double.
pub struct ProviderDouble {
    /// Its base URL, `http://127.0.0.1:<port>/v1`.
    pub base_url: String,
    script: Arc<Script>,
}

impl ProviderDouble {
    /// Starts a double on a free loopback port. With nothing scripted it answers every request
    /// with a completion saying `hello from <model>`.
    pub async fn start() -> ProviderDouble {
        let script = Arc::new(Script::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/messages", post(chat))
            .route("/v1/models", get(models))
            .with_state(Arc::clone(&script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("an address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ProviderDouble {
            base_url: format!("http://{address}/v1"),
            script,
        }
    }

    /// Queues `reply` for the next request.
    pub fn reply(&self, reply: Reply) -> &Self {
        self.script.replies.lock().expect("script").push_back(reply);
        self
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.script.received.lock().expect("script").clone()
    }

    /// Breaks the connection of a [`Reply::StreamBroken`] stream.
    pub fn break_stream(&self) {
        self.script.breaks.notify_one();
    }

    /// Waits until the caller of a held stream has gone away.
    pub async fn caller_left(&self) {
        self.script.left.notified().await;
    }

    /// This double as a provider of the configuration: OpenAI protocol, key `sk-test`, the
    /// given retries, backoff of a millisecond.
    pub fn provider_config(&self, max_retries: u32) -> Value {
        self.provider_config_speaking("openai", max_retries)
    }

    /// [`provider_config`](Self::provider_config) for `protocol` (`openai` or `anthropic`).
    pub fn provider_config_speaking(&self, protocol: &str, max_retries: u32) -> Value {
        json!({
            "custom_provider_config": {"base_provider_type": protocol},
            "network_config": {"base_url": self.base_url, "max_retries": max_retries,
                "retry_backoff_initial": 1, "retry_backoff_max": 2,
                "default_request_timeout_in_seconds": 10},
            "keys": [{"name": "test", "value": "sk-test", "models": ["*"]}]
        })
    }
}

/// A chat request straight through the router, its response unread (for streams).
pub async fn stream_request(app: axum::Router, body: &Value) -> axum::response::Response {
    app.oneshot(
        Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request"),
    )
    .await
    .expect("response")
}

/// The whole body of `response` as text.
pub async fn body_text(response: axum::response::Response) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

/// Serves `app` on a loopback port and runs `script` with the venv's Python (where the official
/// OpenAI SDK is installed), its first argument the service's `/v1` base URL; answers the JSON
/// the script printed.
pub async fn openai_sdk(app: axum::Router, script: &str) -> Value {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let output = tokio::process::Command::new(super::servers::venv_python())
        .args(["-c", script, &format!("http://{address}/v1")])
        .output()
        .await
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

/// A complete answer for `model`.
pub fn completion(model: &str, content: &str) -> Value {
    json!({
        "id": "chatcmpl-double", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    })
}

/// A stream chunk carrying `content`.
pub fn chunk(content: &str) -> Value {
    json!({"id": "chatcmpl-double", "object": "chat.completion.chunk", "created": 1,
           "model": "m", "choices": [{"index": 0, "delta": {"content": content},
           "finish_reason": null}]})
}

async fn chat(
    State(script): State<Arc<Script>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    script.received.lock().expect("script").push(Received {
        path: uri.path().to_string(),
        authorization: header("authorization"),
        anthropic: (header("x-api-key"), header("anthropic-version")),
        body: body.clone(),
    });
    let reply = script.replies.lock().expect("script").pop_front();
    let model = body["model"].as_str().unwrap_or_default().to_string();
    match reply {
        None => axum::Json(completion(&model, &format!("hello from {model}"))).into_response(),
        Some(Reply::Json(status, body)) => (
            StatusCode::from_u16(status).expect("a status"),
            axum::Json(body),
        )
            .into_response(),
        Some(Reply::Stream(chunks)) => {
            let mut events: Vec<Bytes> = chunks.iter().map(event).collect();
            events.push(Bytes::from_static(b"data: [DONE]\n\n"));
            sse(Body::from_stream(futures::stream::iter(
                events.into_iter().map(Ok::<_, std::convert::Infallible>),
            )))
        }
        Some(Reply::Events(events)) => {
            let events: Vec<Bytes> = events
                .iter()
                .map(|e| {
                    Bytes::from(format!(
                        "event: {}\ndata: {e}\n\n",
                        e["type"].as_str().unwrap_or("message")
                    ))
                })
                .collect();
            sse(Body::from_stream(futures::stream::iter(
                events.into_iter().map(Ok::<_, std::convert::Infallible>),
            )))
        }
        Some(Reply::StreamBroken(chunks)) => {
            let script = Arc::clone(&script);
            let first: Vec<Result<Bytes, std::io::Error>> =
                chunks.iter().map(|chunk| Ok(event(chunk))).collect();
            let broken = futures::stream::once(async move {
                script.breaks.notified().await;
                Err(std::io::Error::other("the double broke the stream"))
            });
            sse(Body::from_stream(
                futures::stream::iter(first).chain(broken),
            ))
        }
        Some(Reply::StreamHeld(chunks)) => {
            let guard = LeftGuard(Arc::clone(&script));
            let events = futures::stream::iter(chunks.iter().map(event).collect::<Vec<_>>())
                .chain(futures::stream::pending())
                .map(move |bytes| {
                    let _held = &guard;
                    Ok::<_, std::convert::Infallible>(bytes)
                });
            sse(Body::from_stream(events))
        }
    }
}

async fn models() -> axum::Json<Value> {
    axum::Json(json!({"object": "list", "data": [
        {"id": "double-small", "object": "model", "created": 0, "owned_by": "double"},
        {"id": "double-large", "object": "model", "created": 0, "owned_by": "double"}
    ]}))
}

fn event(chunk: &Value) -> Bytes {
    Bytes::from(format!("data: {chunk}\n\n"))
}

fn sse(body: Body) -> Response {
    ([("content-type", "text/event-stream")], body).into_response()
}

/// Dropped with a held stream's body: the caller went away.
struct LeftGuard(Arc<Script>);

impl Drop for LeftGuard {
    fn drop(&mut self) {
        self.0.left.notify_one();
    }
}

/// A complete answer asking for `calls`: `(id, tool name, arguments)`.
pub fn tool_calls(calls: &[(&str, &str, Value)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, arguments)| {
            json!({"id": id, "type": "function",
                   "function": {"name": name, "arguments": arguments.to_string()}})
        })
        .collect();
    let mut answer = completion("m", "");
    answer["choices"][0]["message"]["content"] = Value::Null;
    answer["choices"][0]["message"]["tool_calls"] = json!(calls);
    answer["choices"][0]["finish_reason"] = json!("tool_calls");
    answer
}
