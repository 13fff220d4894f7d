//! Where a chat request goes: its targets (`model`, then each of `fallbacks`), retries with
//! backoff inside a provider, fallbacks across providers, and how the answer was served.
//!
//! Every target is checked before anything is sent (the provider exists and has a key for the
//! model), so a request that cannot succeed fails at
//! once with a 400. Then each target in turn: up to `1 + max_retries` attempts while the
//! provider fails in a way worth retrying (429, 5xx, connection, timeout), waiting the
//! provider's backoff between them; such a failure moves on to the next target. Any other
//! failure (the provider refused the request itself, a 4xx) is the answer: another provider
//! would refuse it too. When every target failed, the caller gets the primary's error (as
//! Bifrost does), and `extra_fields.fallback_attempts` lists every failure.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::keys::{self, SecretKey};
use super::upstream::{AttemptError, EventStream, Reply};
use super::{LlmError, ModelRef, Provider, Providers, anthropic, openai};
use crate::config::Protocol;

/// A chat request as the router sees it.
pub struct ChatRequest {
    /// The body to send, without the gateway's own fields; `model` is set per target.
    pub body: Map<String, Value>,
    /// The model asked for, then the fallbacks, in order.
    pub targets: Vec<ModelRef>,
    /// Whether the caller asked for an event stream.
    pub stream: bool,
}

/// How an answer was served: Bifrost's `extra_fields`.
#[derive(Debug, Clone, Serialize)]
pub struct Served {
    /// The provider that answered (or, for an error, whose error it is).
    pub provider: String,
    /// The `model` of the request.
    pub model_requested: String,
    /// The `<provider>/<model>` that answered.
    pub model_used: String,
    /// Each target that failed before the answer, in order.
    pub fallback_attempts: Vec<Attempt>,
    /// From the request's arrival at the router to the answer (its first byte, for a stream).
    pub latency_ms: f64,
    /// Agent mode: a tool the model called needs the caller's OAuth authorization first
    /// (Bifrost's `mcp_auth_required`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_auth_required: Option<McpAuthRequired>,
}

/// `extra_fields.mcp_auth_required`: which client needs the caller's authorization, and where
/// to give it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpAuthRequired {
    /// Always `oauth`.
    pub kind: &'static str,
    /// Where the caller authorizes.
    pub authorize_url: String,
    /// The client.
    pub mcp_client_name: String,
    /// Written for the caller.
    pub message: String,
}

/// A target that failed.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// Its provider.
    pub provider: String,
    /// Its `<provider>/<model>`.
    pub model: String,
    /// The status its error carried.
    pub status: u16,
    /// Why it failed.
    pub error: String,
}

/// What a routed request got.
pub enum Answer {
    /// A complete `chat.completion` (`extra_fields` added), and how it was served.
    Complete(Value, Served),
    /// An event stream in OpenAI's chunk format, and how it was served.
    Stream(EventStream, Served),
}

/// A target checked and ready: its provider and the key to call it with.
struct Target<'a> {
    model: &'a ModelRef,
    provider: Arc<Provider>,
    key: Option<SecretKey>,
}

/// Routes `request` through `providers`.
///
/// # Errors
/// The [`LlmError`] the caller gets, and how far the request got.
pub async fn route(
    providers: &Providers,
    request: ChatRequest,
) -> Result<Answer, (LlmError, Served)> {
    let started = Instant::now();
    let requested = request
        .targets
        .first()
        .map(ModelRef::to_string)
        .unwrap_or_default();
    let mut served = Served {
        provider: request
            .targets
            .first()
            .map(|m| m.provider.clone())
            .unwrap_or_default(),
        model_requested: requested.clone(),
        model_used: String::new(),
        fallback_attempts: Vec::new(),
        latency_ms: 0.0,
        mcp_auth_required: None,
    };
    let targets = match check_targets(providers, &request.targets) {
        Ok(targets) => targets,
        Err(error) => return Err((error, served)),
    };
    let mut body = request.body;
    let mut first_error = None;
    for target in &targets {
        body.insert("model".into(), Value::String(target.model.model.clone()));
        let body = Value::Object(body.clone());
        match attempt_with_retries(providers, target, &body, request.stream).await {
            Ok(reply) => {
                served.provider = target.provider.name.clone();
                served.model_used = target.model.to_string();
                served.latency_ms = started.elapsed().as_secs_f64() * 1e3;
                return Ok(match reply {
                    Reply::Complete(mut answer) => {
                        answer["extra_fields"] = json!(served);
                        Answer::Complete(answer, served)
                    }
                    Reply::Stream(events) => Answer::Stream(events, served),
                });
            }
            Err(failure) => {
                let retryable = failure.retryable();
                let error = failure.into_error(&target.provider.name);
                served.fallback_attempts.push(Attempt {
                    provider: target.provider.name.clone(),
                    model: target.model.to_string(),
                    status: error.status.as_u16(),
                    error: error.message.clone(),
                });
                if !retryable {
                    served.provider = target.provider.name.clone();
                    served.latency_ms = started.elapsed().as_secs_f64() * 1e3;
                    return Err((error, served));
                }
                first_error.get_or_insert(error);
            }
        }
    }
    served.latency_ms = started.elapsed().as_secs_f64() * 1e3;
    let error = first_error.unwrap_or_else(|| LlmError::invalid("model: no target to try"));
    Err((error, served))
}

/// Every target, checked: its provider exists and has a key for the model.
fn check_targets<'a>(
    providers: &Providers,
    targets: &'a [ModelRef],
) -> Result<Vec<Target<'a>>, LlmError> {
    targets
        .iter()
        .map(|model| {
            let Some(provider) = providers.get(&model.provider) else {
                let all = providers.all();
                let known: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
                return Err(LlmError::invalid(format!(
                    "unknown provider {} in {model}; configured: {}",
                    model.provider,
                    if known.is_empty() {
                        "none (add a providers section)".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            let key = keys::choose(&provider, &model.model)?;
            Ok(Target {
                model,
                provider,
                key,
            })
        })
        .collect()
}

/// One target: the first attempt and up to `max_retries` more while it fails in a way worth
/// retrying, waiting the provider's backoff between attempts.
async fn attempt_with_retries(
    providers: &Providers,
    target: &Target<'_>,
    body: &Value,
    stream: bool,
) -> Result<Reply, AttemptError> {
    let network = &target.provider.network;
    let mut retry = 0;
    loop {
        let (http, provider, key) = (providers.http(), &*target.provider, target.key.as_ref());
        let sent = match provider.protocol {
            Protocol::OpenAi => openai::send(http, provider, key, body, stream).await,
            Protocol::Anthropic => anthropic::send(http, provider, key, body, stream).await,
        };
        match sent {
            Err(failure) if failure.retryable() && retry < network.max_retries => {
                tokio::time::sleep(network.backoff(retry)).await;
                retry += 1;
            }
            other => return other,
        }
    }
}
