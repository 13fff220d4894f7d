//! Streamable HTTP, and the HTTP client every HTTP transport uses.
//!
//! [`client`] is the one factory of upstream HTTP clients; an OAuth client's connection wraps it
//! in rmcp's `AuthClient` (see [`crate::mcp::auth`]), which adds the token to every request. [`target`] resolves a client's URL
//! and static headers (`env.NAME` references read here, when connecting, and nowhere else).
//! [`status_of`] finds the HTTP status a failed handshake carries, reading rmcp's and reqwest's
//! typed errors.

use std::collections::HashMap;
use std::error::Error;
use std::sync::OnceLock;

use http::{HeaderName, HeaderValue};
use rmcp::ServiceExt;
use rmcp::service::ClientInitializeError;
use rmcp::transport::AuthClient;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig, StreamableHttpError,
};

use super::trace::Traced;
use super::{ConnectError, Session, Upstream, sse};
use crate::config::{ClientConfig, resolve_env};

/// The HTTP client of every upstream HTTP transport. One for the process: its connection pool
/// is shared, and cloning it is cheap.
///
/// # Errors
/// [`ConnectError::Initialize`] when the client cannot be built (no TLS backend).
pub fn client() -> Result<reqwest::Client, ConnectError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .build()
        .map_err(|error| ConnectError::Initialize {
            source: Box::new(error),
        })?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// The URL and static headers of an HTTP or SSE client, with `env.NAME` references resolved.
///
/// # Errors
/// [`ConnectError::MissingVariable`] for an unset variable, [`ConnectError::InvalidHeader`]
/// for a header that is not valid HTTP.
pub fn target(
    config: &ClientConfig,
) -> Result<(String, HashMap<HeaderName, HeaderValue>), ConnectError> {
    let url = resolve_env(config.connection_string.as_deref().unwrap_or_default())?;
    let mut headers = HashMap::new();
    for (name, value) in &config.headers {
        let value = resolve_env(value)?;
        let invalid = || ConnectError::InvalidHeader(name.clone());
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?,
            HeaderValue::from_str(&value).map_err(|_| invalid())?,
        );
    }
    Ok((url, headers))
}

/// Opens a streamable-HTTP session with `config`'s server.
///
/// # Errors
/// A [`ConnectError`]; [`ConnectError::Status`] when the server answered with an HTTP error.
pub async fn connect(
    config: &ClientConfig,
    handler: Upstream,
    auth: Option<AuthClient<reqwest::Client>>,
) -> Result<Session, ConnectError> {
    let (url, headers) = target(config)?;
    let transport_config = StreamableHttpClientTransportConfig::with_uri(url)
        .custom_headers(headers)
        .reinit_on_expired_session(true);
    let session = match auth {
        None => {
            let transport =
                StreamableHttpClientTransport::with_client(Traced(client()?), transport_config);
            handler.serve(transport).await
        }
        Some(auth) => {
            let transport =
                StreamableHttpClientTransport::with_client(Traced(auth), transport_config);
            handler.serve(transport).await
        }
    };
    session.map_err(ConnectError::handshake)
}

/// The OAuth challenge behind a failed handshake (see [`auth_challenge`]).
pub fn handshake_challenge(error: &ClientInitializeError) -> Option<(String, bool)> {
    handshake_cause(error).and_then(auth_challenge)
}

/// The OAuth challenge behind a failed request (see [`auth_challenge`]).
pub fn request_challenge(error: &rmcp::ServiceError) -> Option<(String, bool)> {
    match error {
        rmcp::ServiceError::TransportSend(error) => auth_challenge(error.error.as_ref()),
        _ => None,
    }
}

/// The `WWW-Authenticate` challenge behind an error, when the server refused for want of a
/// token (`401`) or of scope (`403 insufficient_scope`, then `true`).
pub fn auth_challenge(error: &(dyn Error + 'static)) -> Option<(String, bool)> {
    in_chain(error, challenge_in)
}

/// The challenge `error` itself carries, if it is a refusal of codemode's HTTP transports.
fn challenge_in(error: &(dyn Error + 'static)) -> Option<(String, bool)> {
    if let Some(error) = error.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
        return match error {
            StreamableHttpError::AuthRequired(refusal) => {
                Some((refusal.www_authenticate_header.clone(), false))
            }
            StreamableHttpError::InsufficientScope(refusal) => {
                Some((refusal.www_authenticate_header.clone(), true))
            }
            _ => None,
        };
    }
    match error.downcast_ref::<sse::SseError>() {
        Some(sse::SseError::AuthRequired(challenge)) => Some((challenge.clone(), false)),
        _ => None,
    }
}

/// The HTTP status behind a failed handshake, when the server answered with one.
pub fn status_of(error: &ClientInitializeError) -> Option<u16> {
    handshake_cause(error).and_then(|error| in_chain(error, status_in))
}

/// The transport's error behind a failed handshake (rmcp does not expose it as a `source`).
fn handshake_cause(error: &ClientInitializeError) -> Option<&(dyn Error + 'static)> {
    match error {
        ClientInitializeError::TransportError { error, .. } => Some(error.error.as_ref()),
        // The fallback's failure is the one that says what the server accepts.
        ClientInitializeError::LegacyFallbackFailed { fallback, .. } => handshake_cause(fallback),
        _ => None,
    }
}

/// The first answer `find` gives for `error` or one of its sources.
fn in_chain<T>(
    error: &(dyn Error + 'static),
    find: impl Fn(&(dyn Error + 'static)) -> Option<T>,
) -> Option<T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = find(error) {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// The status `error` itself carries, if it is one of the HTTP errors codemode's transports
/// raise.
fn status_in(error: &(dyn Error + 'static)) -> Option<u16> {
    if let Some(error) = error.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
        return match error {
            StreamableHttpError::HttpStatus(status) => Some(status.status),
            StreamableHttpError::AuthRequired(_) => Some(401),
            StreamableHttpError::InsufficientScope(_) => Some(403),
            StreamableHttpError::SessionExpired => Some(404),
            StreamableHttpError::Client(error) => error.status().map(|s| s.as_u16()),
            // rmcp keeps the status of other 4xx answers only in this message, which its own
            // code formats as `HTTP {status}: {body}` (pinned by the tests of refusals).
            StreamableHttpError::UnexpectedServerResponse(text) => leading_status(text),
            _ => None,
        };
    }
    if let Some(error) = error.downcast_ref::<reqwest::Error>() {
        return error.status().map(|s| s.as_u16());
    }
    if let Some(error) = error.downcast_ref::<sse::SseError>() {
        return error.status();
    }
    None
}

/// `404` of `HTTP 404 Not Found: ...`.
fn leading_status(text: &str) -> Option<u16> {
    let code = text.strip_prefix("HTTP ")?.get(..3)?;
    code.parse()
        .ok()
        .filter(|status| (100..600).contains(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_of_an_unexpected_answer_is_its_leading_code() {
        assert_eq!(
            leading_status("HTTP 404 Not Found: no such path"),
            Some(404)
        );
        assert_eq!(leading_status("HTTP 405 Method Not Allowed: "), Some(405));
        assert_eq!(leading_status("error at http://127.0.0.1:40404/mcp"), None);
        assert_eq!(leading_status("HTTP 9x"), None);
    }
}
