//! One HTTP attempt at a provider, whatever its protocol: headers, the per-attempt timeout, and
//! what an error answer means (its status, its own error fields, never the key).

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use super::keys::SecretKey;
use super::{LlmError, Provider};
use crate::config::resolve_env;

/// The most of an error answer's body that is read.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// An answer streamed as OpenAI's `text/event-stream` of `chat.completion.chunk` events,
/// `[DONE]` included: the bytes to forward, or why the stream broke.
pub type EventStream = BoxStream<'static, Result<Bytes, String>>;

/// What one attempt got, in OpenAI's shapes whatever the provider's protocol.
pub enum Reply {
    /// A complete `chat.completion`.
    Complete(Value),
    /// An event stream, forwarded as it arrives.
    Stream(EventStream),
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

/// An open answer of `provider`, and when the attempt began (its timeout counts from there).
pub struct Opened {
    /// The response, its status a success.
    pub response: reqwest::Response,
    /// When the attempt began.
    pub started: Instant,
}

/// Posts `body` to `{base_url}{path}` of `provider` with `auth` headers and its extra headers;
/// the answer when its status is a success.
///
/// # Errors
/// [`AttemptError`]: the provider's error answer, a connection failure, the timeout.
pub async fn post(
    http: &reqwest::Client,
    provider: &Provider,
    path: &str,
    auth: &[(&str, &str)],
    key: Option<&SecretKey>,
    body: &Value,
) -> Result<Opened, AttemptError> {
    let mut request = http.post(format!("{}{path}", provider.base_url)).json(body);
    for (name, value) in auth {
        request = request.header(*name, *value);
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
    // The provider's request joins the caller's trace (W3C traceparent).
    request = request.headers(crate::observe::telemetry::current_trace_headers());
    let timeout = provider.network.timeout();
    let started = Instant::now();
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
    Ok(Opened { response, started })
}

impl Opened {
    /// The whole answer as a JSON object, within what is left of the provider's timeout.
    ///
    /// # Errors
    /// [`AttemptError`]: the timeout, a broken connection, an answer that is not a JSON object.
    pub async fn json(self, provider: &Provider) -> Result<Value, AttemptError> {
        let timeout = provider.network.timeout();
        let rest = timeout.saturating_sub(self.started.elapsed());
        let bytes = match tokio::time::timeout(rest, self.response.bytes()).await {
            Err(_) => return Err(AttemptError::Timeout(timeout)),
            Ok(Err(error)) => return Err(AttemptError::Connect(describe(&error))),
            Ok(Ok(bytes)) => bytes,
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) if value.is_object() => Ok(value),
            Ok(_) => Err(AttemptError::Unreadable("not a JSON object".into())),
            Err(error) => Err(AttemptError::Unreadable(error.to_string())),
        }
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
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
