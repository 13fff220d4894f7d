//! The OpenAI chat-completions wire protocol: one attempt at `POST {base_url}/chat/completions`.
//!
//! The body goes as the caller wrote it (the gateway's own fields already taken out, `model`
//! set to the provider's name for it). A complete answer is read as JSON; a streamed one is
//! handed back as the open response, so its events are forwarded as they arrive.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use super::keys::SecretKey;
use super::{LlmError, Provider};
use crate::config::resolve_env;

/// The most of an error answer's body that is read.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// What one attempt got.
pub enum Reply {
    /// A complete `chat.completion`.
    Complete(Value),
    /// An open `text/event-stream` of `chat.completion.chunk` events.
    Stream(reqwest::Response),
}

/// Why one attempt failed.
#[derive(Debug)]
pub enum AttemptError {
    /// The provider answered with an error status.
    Status(LlmError),
    /// The provider could not be reached, or the connection broke.
    Connect(String),
    /// No answer within the provider's timeout.
    Timeout(Duration),
    /// Nothing was sent: the request cannot be made (an unset variable in a header).
    Refused(LlmError),
    /// The provider answered 2xx with something that is not a chat completion.
    Unreadable(String),
}

impl AttemptError {
    /// True for the failures worth another try: 429, 5xx, a connection failure, a timeout.
    pub fn retryable(&self) -> bool {
        match self {
            AttemptError::Status(error) => {
                error.status == StatusCode::TOO_MANY_REQUESTS || error.status.is_server_error()
            }
            AttemptError::Connect(_) | AttemptError::Timeout(_) => true,
            AttemptError::Refused(_) | AttemptError::Unreadable(_) => false,
        }
    }

    /// The error the caller gets for this failure at `provider`.
    pub fn into_error(self, provider: &str) -> LlmError {
        match self {
            AttemptError::Status(error) | AttemptError::Refused(error) => error,
            AttemptError::Connect(why) => LlmError::new(
                StatusCode::BAD_GATEWAY,
                "api_error",
                format!("provider {provider} could not be reached: {why}"),
            ),
            AttemptError::Timeout(after) => LlmError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "provider {provider} did not answer within {} s",
                    after.as_secs()
                ),
            ),
            AttemptError::Unreadable(why) => LlmError::new(
                StatusCode::BAD_GATEWAY,
                "api_error",
                format!("provider {provider} sent an answer codemode cannot read: {why}"),
            ),
        }
    }
}

/// Sends `body` to `provider` once; `stream` says whether the answer is an event stream.
pub async fn send(
    http: &reqwest::Client,
    provider: &Provider,
    key: Option<&SecretKey>,
    body: &Value,
    stream: bool,
) -> Result<Reply, AttemptError> {
    let mut request = http
        .post(format!("{}/chat/completions", provider.base_url))
        .json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key.expose());
    }
    for (name, value) in &provider.network.extra_headers {
        let value = resolve_env(value).map_err(|missing| {
            AttemptError::Refused(LlmError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                format!("provider {}'s header {name}: {missing}", provider.name),
            ))
        })?;
        request = request.header(name, value);
    }
    let timeout = provider.network.timeout();
    let started = tokio::time::Instant::now();
    let response = match tokio::time::timeout(timeout, request.send()).await {
        Err(_) => return Err(AttemptError::Timeout(timeout)),
        Ok(Err(error)) if error.is_timeout() => return Err(AttemptError::Timeout(timeout)),
        Ok(Err(error)) => return Err(AttemptError::Connect(describe(&error))),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    if !status.is_success() {
        let text = read_bounded(response).await;
        return Err(AttemptError::Status(status_error(
            &provider.name,
            status,
            &text,
            key,
        )));
    }
    if stream {
        return Ok(Reply::Stream(response));
    }
    let rest = timeout.saturating_sub(started.elapsed());
    let bytes = match tokio::time::timeout(rest, response.bytes()).await {
        Err(_) => return Err(AttemptError::Timeout(timeout)),
        Ok(Err(error)) => return Err(AttemptError::Connect(describe(&error))),
        Ok(Ok(bytes)) => bytes,
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) if value.is_object() => Ok(Reply::Complete(value)),
        Ok(_) => Err(AttemptError::Unreadable("not a JSON object".into())),
        Err(error) => Err(AttemptError::Unreadable(error.to_string())),
    }
}

/// The start of an error answer's body, as text.
async fn read_bounded(response: reqwest::Response) -> String {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY_BYTES {
            body.truncate(MAX_ERROR_BODY_BYTES);
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// The caller's error for a provider's error answer: its status, its own `type`, `message` and
/// `code` when it sent OpenAI's error shape, and never the key it was called with.
pub(crate) fn status_error(
    provider: &str,
    status: StatusCode,
    text: &str,
    key: Option<&SecretKey>,
) -> LlmError {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let error = parsed.as_ref().map(|v| v.get("error").unwrap_or(v));
    let field = |name: &str| error.and_then(|e| e.get(name)).cloned();
    let upstream_message = field("message")
        .and_then(|m| m.as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(500).collect());
    let mut message = format!("provider {provider} answered {status}: {upstream_message}");
    if let Some(key) = key.filter(|k| !k.expose().is_empty()) {
        message = message.replace(key.expose(), "<redacted>");
    }
    let kind = field("type")
        .and_then(|t| t.as_str().map(str::to_string))
        .unwrap_or_else(|| default_kind(status).to_string());
    LlmError {
        status,
        kind,
        message,
        code: field("code").filter(|c| !c.is_null()).map(Box::new),
    }
}

/// OpenAI's error `type` for `status`, when the provider named none.
fn default_kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 404 | 409 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

/// A reqwest error and its causes.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The ids of the models `provider` lists at `GET {base_url}/models`.
///
/// # Errors
/// A description of why it could not be asked or read.
pub async fn list_models(
    http: &reqwest::Client,
    provider: &Provider,
    key: Option<&SecretKey>,
) -> Result<Vec<String>, String> {
    let mut request = http.get(format!("{}/models", provider.base_url));
    if let Some(key) = key {
        request = request.bearer_auth(key.expose());
    }
    let timeout = provider.network.timeout().min(Duration::from_secs(10));
    let response = tokio::time::timeout(timeout, request.send())
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|error| describe(&error))?;
    if !response.status().is_success() {
        return Err(format!("it answered {}", response.status()));
    }
    let listing: Value = tokio::time::timeout(timeout, response.json())
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|error| describe(&error))?;
    Ok(listing["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|model| model["id"].as_str().map(str::to_string))
        .collect())
}
