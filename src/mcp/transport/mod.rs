//! Opening a session with one upstream MCP server and listing its tools.
//!
//! One file per transport: [`stdio`] (a child process), [`http`] (streamable HTTP, and the one
//! HTTP client factory every HTTP transport uses, where upstream authentication plugs in),
//! [`sse`] (the legacy HTTP+SSE transport rmcp no longer has); [`trace`] carries a tool call's
//! trace context to the server. [`connect`] picks one by the
//! client's `connection_type`, completes the MCP handshake and lists the tools, within
//! [`CONNECT_TIMEOUT`].
//!
//! A failure is a typed [`ConnectError`] that keeps its source and, for HTTP, the status the
//! server answered with; whether to retry is decided on those ([`ConnectError::is_transient`]),
//! never on the wording of a message.

pub mod http;
pub mod sse;
pub mod stdio;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::client::progress::ProgressDispatcher;
use rmcp::model::{
    ClientCapabilities, Implementation, ProgressNotificationParam, ProtocolVersion, Tool,
};
use rmcp::service::{ClientInitializeError, NotificationContext, RunningService};
use rmcp::transport::AuthClient;
use rmcp::{ClientHandler, RoleClient, ServiceError};
use tokio::sync::Notify;

use crate::config::{ClientConfig, ConnectionType, MissingVariable};

/// A live MCP session with an upstream server.
pub type Session = RunningService<RoleClient, Upstream>;

/// An error from a lower layer, kept whole.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// codemode's side of an upstream session: it introduces itself as codemode, passes
/// `notifications/tools/list_changed` on (so the manager re-lists the server's tools at once),
/// and hands progress notifications to whoever subscribed to their token.
#[derive(Clone)]
pub struct Upstream {
    tools_changed: Arc<Notify>,
    progress: ProgressDispatcher,
}

impl Upstream {
    /// A handler that wakes `tools_changed` when the server says its tools changed and routes
    /// progress through `progress`.
    pub fn new(tools_changed: Arc<Notify>, progress: ProgressDispatcher) -> Self {
        Upstream {
            tools_changed,
            progress,
        }
    }
}

impl ClientHandler for Upstream {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.handle_notification(params).await;
    }

    fn get_info(&self) -> rmcp::model::ClientConfig {
        // The current stable revision of the spec (rmcp's default is the 2026-07-28 draft,
        // which servers of the stable revisions do not expect); servers answer the version
        // they speak.
        rmcp::model::ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("codemode", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }
}

/// Why a client could not be connected.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// An `env.NAME` reference or an `envs` entry names an unset variable.
    #[error(transparent)]
    MissingVariable(#[from] MissingVariable),
    /// The command could not be started (not found, not executable).
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command as configured.
        command: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A header name or value is not valid HTTP.
    #[error("header {0} is not valid HTTP")]
    InvalidHeader(String),
    /// The configuration names nothing to connect to (an in-process client, say).
    #[error("{0}")]
    NothingToConnect(&'static str),
    /// The server answered the handshake with an HTTP error status.
    #[error("the server did not complete initialize: HTTP {status}: {source}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The transport's error.
        source: BoxError,
    },
    /// The handshake failed otherwise: the server was unreachable, closed the connection, or
    /// answered something that is not MCP.
    #[error("the server did not complete initialize: {source}")]
    Initialize {
        /// The transport's or the protocol's error.
        source: BoxError,
    },
    /// The server would not list its tools.
    #[error("listing tools failed: {source}")]
    ListTools {
        /// rmcp's error.
        source: ServiceError,
    },
    /// The server did not complete the handshake and tool listing in time.
    #[error("the server did not answer within {} s", CONNECT_TIMEOUT.as_secs())]
    Timeout,
    /// The server refused for want of an OAuth token (401) or of scope (403
    /// `insufficient_scope`); `challenge` is its `WWW-Authenticate`.
    #[error("the server requires OAuth authorization")]
    AuthRequired {
        /// The server's `WWW-Authenticate` challenge.
        challenge: String,
        /// Whether it wants more scope than the token has.
        insufficient_scope: bool,
    },
    /// An OAuth step failed before the server was reached.
    #[error(transparent)]
    OAuth(#[from] crate::mcp::auth::OAuthError),
}

impl ConnectError {
    /// Whether trying again may help: an unreachable server, a connection closed during the
    /// handshake, a timeout, and the statuses that say "later" (408, 429, 5xx). A command that
    /// does not exist, a missing variable, a bad header and the other statuses (401, 403, 404,
    /// 405, ...) fail the same way every time.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::Timeout
            | ConnectError::Initialize { .. }
            | ConnectError::ListTools { .. } => true,
            ConnectError::Status { status, .. } => {
                *status == 408 || *status == 429 || *status >= 500
            }
            ConnectError::MissingVariable(_)
            | ConnectError::Spawn { .. }
            | ConnectError::InvalidHeader(_)
            | ConnectError::NothingToConnect(_)
            | ConnectError::AuthRequired { .. }
            | ConnectError::OAuth(_) => false,
        }
    }

    /// A failed handshake: the server's OAuth challenge, else the HTTP status the transport
    /// saw, if any.
    fn handshake(error: ClientInitializeError) -> ConnectError {
        if let Some(refusal) = refusal(http::handshake_challenge(&error)) {
            return refusal;
        }
        ConnectError::failed(http::status_of(&error), Box::new(error))
    }

    /// A failure to reach the server: [`ConnectError::Status`] when it answered with an HTTP
    /// `status`, else [`ConnectError::Initialize`].
    fn failed(status: Option<u16>, source: BoxError) -> ConnectError {
        match status {
            Some(status) => ConnectError::Status { status, source },
            None => ConnectError::Initialize { source },
        }
    }
}

/// A session with an upstream server, its tools, and its child's process id for stdio.
pub struct Connected {
    /// The session.
    pub session: Session,
    /// The tools it listed.
    pub tools: Vec<Tool>,
    /// The stdio child's process id.
    pub pid: Option<u32>,
}

/// How long connecting (spawn or request, handshake, tool listing) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects `config`'s server and lists its tools, within [`CONNECT_TIMEOUT`].
///
/// # Errors
/// A [`ConnectError`] saying which step failed and why.
pub async fn connect(
    config: &ClientConfig,
    handler: Upstream,
    auth: Option<AuthClient<reqwest::Client>>,
) -> Result<Connected, ConnectError> {
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, connect_untimed(config, handler, auth))
        .await
        .map_err(|_| ConnectError::Timeout)?;
    match connected {
        // A client of static headers has no authorization to ask for: the refusal is final.
        Err(ConnectError::AuthRequired {
            insufficient_scope, ..
        }) if !config.auth_type.is_oauth() => Err(ConnectError::Status {
            status: if insufficient_scope { 403 } else { 401 },
            source: "the server requires authorization: check the client's headers, or set \
                     \"auth_type\": \"oauth\""
                .into(),
        }),
        connected => connected,
    }
}

/// The OAuth refusal of a `challenge` (see [`http::auth_challenge`]).
fn refusal(challenge: Option<(String, bool)>) -> Option<ConnectError> {
    challenge.map(
        |(challenge, insufficient_scope)| ConnectError::AuthRequired {
            challenge,
            insufficient_scope,
        },
    )
}

/// The OAuth refusal behind a failed request, if the server refused for want of a token or of
/// scope.
pub fn request_refusal(error: &ServiceError) -> Option<ConnectError> {
    refusal(http::request_challenge(error))
}

async fn connect_untimed(
    config: &ClientConfig,
    handler: Upstream,
    auth: Option<AuthClient<reqwest::Client>>,
) -> Result<Connected, ConnectError> {
    let (session, pid) = match config.connection_type {
        ConnectionType::Stdio => match &config.stdio_config {
            Some(config) => stdio::connect(config, handler).await?,
            None => return Err(ConnectError::NothingToConnect("no stdio_config")),
        },
        ConnectionType::Http => (http::connect(config, handler, auth).await?, None),
        ConnectionType::Sse => (sse::connect(config, handler, auth).await?, None),
        ConnectionType::InProcess => {
            return Err(ConnectError::NothingToConnect(
                "an in-process client has no server to connect to",
            ));
        }
    };
    let tools = session
        .list_all_tools()
        .await
        .map_err(|source| request_refusal(&source).unwrap_or(ConnectError::ListTools { source }))?;
    Ok(Connected {
        session,
        tools,
        pid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> ConnectError {
        ConnectError::Status {
            status,
            source: "refused".into(),
        }
    }

    #[test]
    fn refusals_are_permanent_and_later_statuses_transient() {
        for code in [408, 429, 500, 502, 503] {
            assert!(status(code).is_transient(), "{code}");
        }
        for code in [400, 401, 403, 404, 405] {
            assert!(!status(code).is_transient(), "{code}");
        }
        let unreachable = ConnectError::Initialize {
            source: "connection refused".into(),
        };
        assert!(unreachable.is_transient());
        assert!(ConnectError::Timeout.is_transient());
        let spawn = ConnectError::Spawn {
            command: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(!spawn.is_transient());
        assert!(!ConnectError::MissingVariable(MissingVariable("X".into())).is_transient());
    }
}
