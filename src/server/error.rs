//! The one error type of the HTTP API: `{"error": {"type", "message"}}` with a fitting status.
//!
//! Messages are written for the caller; nothing here echoes a resolved secret (configurations are
//! kept with their `env.NAME` references) or an internal path. A failure of codemode itself
//! ([`ApiError::Internal`]) keeps its source error: the caller reads a generic sentence, the log
//! gets the whole chain (a database error names its file, which is nobody else's business).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::ConfigError;
use crate::executor::{ExecuteError, ToolError};
use crate::gateway::CallError;
use crate::mcp::ManagerError;
use crate::mcp::auth::OAuthError;
use crate::policy::{AuthError, KeyError};
use crate::store::StoreError;

/// An API failure. Each variant has its own status and `type`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or names a bad field.
    #[error("{0}")]
    InvalidRequest(String),
    /// A field of a configuration is invalid: the body also names it in `field`.
    #[error("{0}")]
    InvalidField(ConfigError),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials do not matter: this request may not be made from where it comes (a
    /// cross-origin browser request, the UI on a non-loopback listener without an admin token).
    #[error("{0}")]
    Forbidden(String),
    /// The named client does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The client exists already.
    #[error("{0}")]
    Conflict(String),
    /// The upstream server failed (did not connect, or a tool reported an error).
    #[error("{0}")]
    Upstream(String),
    /// A tool's arguments are not a JSON object.
    #[error("{0}")]
    InvalidArguments(String),
    /// No client offers this tool.
    #[error("{0}")]
    ToolNotFound(String),
    /// The tool exists but may not be run.
    #[error("{0}")]
    ToolNotAllowed(String),
    /// The tool ran and reported an error.
    #[error("{0}")]
    ToolFailed(String),
    /// The client is not connected.
    #[error("{0}")]
    Unavailable(String),
    /// The tool did not answer in time.
    #[error("{0}")]
    Timeout(String),
    /// The request body is too large.
    #[error("{0}")]
    TooLarge(String),
    /// Every sandbox slot is taken and the queue is full.
    #[error("{0}")]
    Busy(String),
    /// The upstream server needs an OAuth authorization first (`mcp_auth_required`): the body
    /// also carries `authorize_url` and `mcp_client_name`.
    #[error("{message}")]
    AuthRequired {
        /// Written for the caller.
        message: String,
        /// The client that needs it.
        client: String,
        /// Where to authorize.
        authorize_url: String,
    },
    /// codemode itself failed (its database, for instance). The source goes to the log only.
    #[error("codemode failed to serve this request; its log has the details")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::InvalidField(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_error"),
            ApiError::InvalidArguments(_) => (StatusCode::BAD_REQUEST, "invalid_arguments"),
            ApiError::ToolNotFound(_) => (StatusCode::NOT_FOUND, "tool_not_found"),
            ApiError::ToolNotAllowed(_) => (StatusCode::FORBIDDEN, "tool_not_allowed"),
            ApiError::ToolFailed(_) => (StatusCode::BAD_GATEWAY, "tool_error"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "client_unavailable"),
            ApiError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "tool_timeout"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "sandbox_busy"),
            ApiError::AuthRequired { .. } => (StatusCode::UNAUTHORIZED, "mcp_auth_required"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_type();
        if let ApiError::Internal(source) = &self {
            tracing::error!(error = %chain(source.as_ref()), "request failed inside codemode");
        } else if status.is_server_error() {
            tracing::warn!(error = %self, kind, "request failed");
        }
        let mut body = json!({"error": {"type": kind, "message": self.to_string()}});
        if let ApiError::AuthRequired {
            client,
            authorize_url,
            ..
        } = &self
        {
            body["error"]["kind"] = json!("oauth");
            body["error"]["mcp_client_name"] = json!(client);
            body["error"]["authorize_url"] = json!(authorize_url);
        }
        if let ApiError::InvalidField(error) = &self {
            body["error"]["field"] = json!(error.path);
        }
        (status, Json(body)).into_response()
    }
}

impl From<ConfigError> for ApiError {
    fn from(error: ConfigError) -> Self {
        ApiError::InvalidField(error)
    }
}

impl From<ManagerError> for ApiError {
    fn from(error: ManagerError) -> Self {
        match error {
            ManagerError::NotFound(_) => ApiError::NotFound(error.to_string()),
            ManagerError::Duplicate(_) => ApiError::Conflict(error.to_string()),
            ManagerError::Invalid(_) => ApiError::InvalidRequest(error.to_string()),
            ManagerError::Store(source) => ApiError::Internal(Box::new(source)),
            ManagerError::OAuth(error) => error.into(),
        }
    }
}

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> Self {
        let message = error.to_string();
        match error {
            OAuthError::UnknownState | OAuthError::Refused(_) => ApiError::InvalidRequest(message),
            OAuthError::MissingVariable(_) => ApiError::InvalidRequest(message),
            OAuthError::Store(source) => ApiError::Internal(Box::new(source)),
            OAuthError::Discovery(_)
            | OAuthError::Endpoint { .. }
            | OAuthError::Registration(_)
            | OAuthError::Authorization(_)
            | OAuthError::Exchange(_)
            | OAuthError::StepUpLimit { .. } => ApiError::Upstream(message),
        }
    }
}

impl From<ToolError> for ApiError {
    fn from(error: ToolError) -> Self {
        let message = error.to_string();
        match error {
            ToolError::Failed(_) => ApiError::ToolFailed(message),
            ToolError::NotFound(_) => ApiError::ToolNotFound(message),
            ToolError::Denied(_) => ApiError::ToolNotAllowed(message),
            ToolError::InvalidArguments(_) => ApiError::InvalidArguments(message),
            ToolError::Timeout(_) => ApiError::Timeout(message),
            ToolError::Unavailable(_) => ApiError::Unavailable(message),
            ToolError::AuthRequired {
                client,
                authorize_url,
            } => ApiError::AuthRequired {
                message,
                client,
                authorize_url,
            },
        }
    }
}

impl From<ExecuteError> for ApiError {
    fn from(error: ExecuteError) -> Self {
        let message = error.to_string();
        match error {
            ExecuteError::Busy { .. } => ApiError::Busy(message),
            ExecuteError::CodeTooLarge { .. } => {
                ApiError::InvalidRequest(format!("code: {message}"))
            }
            ExecuteError::Limits(_) => ApiError::InvalidRequest(format!("limits: {message}")),
            ExecuteError::Sandbox(_) => ApiError::Internal(Box::new(error)),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Tool(error) => error.into(),
            CallError::Execute(error) => error.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Conflict => ApiError::InvalidRequest(error.to_string()),
            _ => ApiError::Unauthorized(error.to_string()),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::NotFound(_) => ApiError::NotFound(error.to_string()),
            KeyError::Duplicate(_) | KeyError::SameValue => ApiError::Conflict(error.to_string()),
            KeyError::Value(_) => ApiError::InvalidRequest(error.to_string()),
            KeyError::Store(source) => ApiError::Internal(Box::new(source)),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::Internal(Box::new(error))
    }
}

/// `error` and every source below it, `: `-separated.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        text.push_str(": ");
        text.push_str(&error.to_string());
        source = error.source();
    }
    text
}
