//! The legacy HTTP+SSE client transport (MCP 2024-11-05), which rmcp no longer provides.
//!
//! A GET of the SSE URL opens the server's event stream. Its first `endpoint` event names, as a
//! URL relative to the SSE URL, where the client POSTs its JSON-RPC messages; every later
//! `message` event carries one JSON-RPC message from the server. The pair (POSTing sink, event
//! stream) is an rmcp transport. When the event stream ends, the transport ends, and the session
//! with it: the client's supervisor reconnects.

use std::pin::Pin;

use futures::{Sink, Stream, StreamExt};
use http::HeaderMap;
use rmcp::ServiceExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use sse_stream::SseStream;

use rmcp::transport::AuthClient;

use super::{ConnectError, Session, Upstream};
use crate::config::ClientConfig;

/// Why the SSE transport failed.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The HTTP request failed or was refused.
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    /// The server's stream ended before it named its message endpoint.
    #[error("the SSE stream ended before an `endpoint` event")]
    NoEndpoint,
    /// The endpoint is not a valid URL.
    #[error("the endpoint {0:?} is not a valid URL")]
    BadEndpoint(String),
    /// The server wants an OAuth token (401); its `WWW-Authenticate` challenge.
    #[error("the server requires authorization")]
    AuthRequired(String),
    /// The OAuth token could not be had (refresh failed).
    #[error("no OAuth token: {0}")]
    Token(String),
}

impl SseError {
    /// The HTTP status the server refused a request with, if it did.
    pub fn status(&self) -> Option<u16> {
        match self {
            SseError::Http(error) => error.status().map(|s| s.as_u16()),
            SseError::AuthRequired(_) => Some(401),
            SseError::NoEndpoint | SseError::BadEndpoint(_) | SseError::Token(_) => None,
        }
    }
}

/// Opens a legacy SSE session with `config`'s server.
///
/// # Errors
/// A [`ConnectError`]; [`ConnectError::Status`] when the server refused the event stream.
pub async fn connect(
    config: &ClientConfig,
    handler: Upstream,
    auth: Option<AuthClient<reqwest::Client>>,
) -> Result<Session, ConnectError> {
    let (url, headers) = super::http::target(config)?;
    let transport = open(
        super::http::client()?,
        &url,
        headers.into_iter().collect(),
        auth,
    )
    .await
    .map_err(|error| match error {
        SseError::AuthRequired(challenge) => ConnectError::AuthRequired {
            challenge,
            insufficient_scope: false,
        },
        error => ConnectError::failed(error.status(), Box::new(error)),
    })?;
    handler
        .serve(transport)
        .await
        .map_err(ConnectError::handshake)
}

/// The client's half: each message is POSTed to the endpoint.
pub type SseSink = Pin<Box<dyn Sink<ClientJsonRpcMessage, Error = SseError> + Send>>;
/// The server's half: the messages of the event stream.
pub type SseMessages = Pin<Box<dyn Stream<Item = ServerJsonRpcMessage> + Send>>;

/// Opens the event stream at `url` with `http` and returns the transport's two halves.
///
/// # Errors
/// [`SseError`] when the stream cannot be opened or names no usable endpoint.
pub async fn open(
    http: reqwest::Client,
    url: &str,
    headers: HeaderMap,
    auth: Option<AuthClient<reqwest::Client>>,
) -> Result<(SseSink, SseMessages), SseError> {
    let response = http
        .get(url)
        .headers(headers.clone())
        .headers(bearer(auth.as_ref()).await?)
        .header(http::header::ACCEPT, "text/event-stream")
        .send()
        .await?;
    let response = refused(response)?;
    let mut events = SseStream::from_bytes_stream(response.bytes_stream());
    let endpoint = loop {
        match events.next().await {
            Some(Ok(event)) if event.event.as_deref() == Some("endpoint") => {
                break event.data.unwrap_or_default();
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(SseError::NoEndpoint),
        }
    };
    let base = reqwest::Url::parse(url).map_err(|_| SseError::BadEndpoint(url.to_string()))?;
    let endpoint = base
        .join(endpoint.trim())
        .map_err(|_| SseError::BadEndpoint(endpoint))?;
    // Messages carry the OAuth token: they go to the server that was authorized, nowhere else.
    if auth.is_some() && endpoint.origin() != base.origin() {
        return Err(SseError::BadEndpoint(endpoint.to_string()));
    }

    let messages = events.filter_map(|event| async move {
        let event = event.ok()?;
        if event.event.as_deref().is_some_and(|kind| kind != "message") {
            return None;
        }
        let data = event.data?;
        match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
            Ok(message) => Some(message),
            Err(error) => {
                tracing::warn!(%error, "skipping an SSE message that is not JSON-RPC");
                None
            }
        }
    });
    let sink = futures::sink::unfold(
        (http, endpoint, headers, auth),
        |(http, endpoint, headers, auth), message: ClientJsonRpcMessage| async move {
            let response = http
                .post(endpoint.clone())
                .headers(headers.clone())
                .headers(bearer(auth.as_ref()).await?)
                .headers(super::trace::headers_of(&message).into_iter().collect())
                .json(&message)
                .send()
                .await?;
            refused(response)?;
            Ok::<_, SseError>((http, endpoint, headers, auth))
        },
    );
    Ok((Box::pin(sink), Box::pin(messages)))
}

/// The `Authorization` header of an OAuth client's request (refreshing its token when due);
/// nothing when it has no token yet, so the server's 401 says how to authorize.
async fn bearer(auth: Option<&AuthClient<reqwest::Client>>) -> Result<HeaderMap, SseError> {
    let mut headers = HeaderMap::new();
    let Some(auth) = auth else {
        return Ok(headers);
    };
    match auth.get_access_token().await {
        Ok(token) => {
            let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| SseError::Token("the token is not a valid header value".into()))?;
            headers.insert(http::header::AUTHORIZATION, value);
            Ok(headers)
        }
        Err(rmcp::transport::AuthError::AuthorizationRequired) => Ok(headers),
        Err(error) => Err(SseError::Token(error.to_string())),
    }
}

/// `response`, unless the server refused: a 401 with its challenge, another error status as
/// such.
fn refused(response: reqwest::Response) -> Result<reqwest::Response, SseError> {
    if response.status() == http::StatusCode::UNAUTHORIZED {
        let challenge = response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("Bearer")
            .to_string();
        return Err(SseError::AuthRequired(challenge));
    }
    Ok(response.error_for_status()?)
}
