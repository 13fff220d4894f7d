//! Opening a session with one upstream MCP server and listing its tools.
//!
//! A stdio child gets a clean environment: the variables its `envs` names (or sets inline), and
//! PATH so that `npx`, `uvx` and friends resolve; nothing else of codemode's environment, where
//! the provider keys live. Dropping the session closes the child's stdin and kills it if it does
//! not exit, so no child outlives its client.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use rmcp::handler::client::progress::ProgressDispatcher;
use rmcp::model::{ClientCapabilities, Implementation, ProgressNotificationParam, Tool};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::sync::Notify;

use crate::config::{ClientConfig, ConnectionType, MissingVariable, StdioConfig, resolve_env};

/// A live MCP session with an upstream server.
pub type Session = RunningService<RoleClient, Upstream>;

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
        rmcp::model::ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("codemode", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// PATH for a stdio child when codemode itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

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
    /// The server did not complete the MCP handshake.
    #[error("the server did not complete initialize: {0}")]
    Initialize(String),
    /// The server would not list its tools.
    #[error("listing tools failed: {0}")]
    ListTools(String),
    /// The server did not complete the handshake and tool listing in time.
    #[error("the server did not answer within {} s", CONNECT_TIMEOUT.as_secs())]
    Timeout,
    /// A header name or value is not valid HTTP.
    #[error("header {0} is not valid HTTP")]
    InvalidHeader(String),
}

impl ConnectError {
    /// Whether trying again may help: refused or reset connections, 5xx and 429 answers, a child
    /// that died during the handshake. A command that does not exist, a missing variable, a bad
    /// header or a refusal (401, 403) will fail the same way every time.
    pub fn is_transient(&self) -> bool {
        let message = match self {
            ConnectError::Timeout => return true,
            ConnectError::Initialize(message) | ConnectError::ListTools(message) => {
                message.to_lowercase()
            }
            _ => return false,
        };
        // Status codes are matched with their words: a bare "404" also matches the port of
        // `http://127.0.0.1:40404/mcp`, which every connection error quotes.
        !PERMANENT_REFUSALS.iter().any(|p| message.contains(p))
    }
}

/// How rmcp and reqwest word refusals that a retry will not change (401, 403, 404, 405).
const PERMANENT_REFUSALS: [&str; 9] = [
    "unauthorized",
    "forbidden",
    "auth required",
    "authorization required",
    "insufficient scope",
    "not found",
    "method not allowed",
    "http 404",
    "http 405",
];

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
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Connects `config`'s server and lists its tools, within [`CONNECT_TIMEOUT`].
///
/// # Errors
/// A [`ConnectError`] saying which step failed and why.
pub async fn connect(config: &ClientConfig, handler: Upstream) -> Result<Connected, ConnectError> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_untimed(config, handler))
        .await
        .map_err(|_| ConnectError::Timeout)?
}

async fn connect_untimed(
    config: &ClientConfig,
    handler: Upstream,
) -> Result<Connected, ConnectError> {
    let (session, pid) = match config.connection_type {
        ConnectionType::Stdio => match &config.stdio_config {
            Some(stdio) => connect_stdio(stdio, handler).await?,
            None => return Err(ConnectError::Initialize("no stdio_config".into())),
        },
        ConnectionType::Http => (connect_http(config, handler).await?, None),
        ConnectionType::Sse => (connect_sse(config, handler).await?, None),
        ConnectionType::InProcess => {
            return Err(ConnectError::Initialize(
                "an in-process client has no server to connect to".into(),
            ));
        }
    };
    let tools = session
        .list_all_tools()
        .await
        .map_err(|e| ConnectError::ListTools(e.to_string()))?;
    Ok(Connected {
        session,
        tools,
        pid,
    })
}

async fn connect_stdio(
    stdio: &StdioConfig,
    handler: Upstream,
) -> Result<(Session, Option<u32>), ConnectError> {
    let command = stdio_command(stdio)?;
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| ConnectError::Spawn {
            command: stdio.command.clone(),
            source,
        })?;
    let pid = transport.id();
    let session = handler
        .serve(transport)
        .await
        .map_err(|e| ConnectError::Initialize(e.to_string()))?;
    Ok((session, pid))
}

/// The URL and static headers of an HTTP or SSE client, with `env.NAME` references resolved.
fn http_target(
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

async fn connect_sse(config: &ClientConfig, handler: Upstream) -> Result<Session, ConnectError> {
    let (url, headers) = http_target(config)?;
    let transport = super::sse::open(&url, headers.into_iter().collect())
        .await
        .map_err(|e| ConnectError::Initialize(e.to_string()))?;
    handler
        .serve(transport)
        .await
        .map_err(|e| ConnectError::Initialize(e.to_string()))
}

async fn connect_http(config: &ClientConfig, handler: Upstream) -> Result<Session, ConnectError> {
    let (url, headers) = http_target(config)?;
    let transport_config = StreamableHttpClientTransportConfig::with_uri(url)
        .custom_headers(headers)
        .reinit_on_expired_session(true);
    handler
        .serve(StreamableHttpClientTransport::from_config(transport_config))
        .await
        .map_err(|e| ConnectError::Initialize(e.to_string()))
}

/// The child's command line and its clean environment.
fn stdio_command(stdio: &StdioConfig) -> Result<tokio::process::Command, ConnectError> {
    let mut command = tokio::process::Command::new(resolve_env(&stdio.command)?);
    for arg in &stdio.args {
        command.arg(resolve_env(arg)?);
    }
    command.env_clear();
    command.env(
        "PATH",
        std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into()),
    );
    for entry in &stdio.envs {
        match entry.split_once('=') {
            Some((name, value)) => command.env(name, resolve_env(value)?),
            None => {
                let value = std::env::var(entry).map_err(|_| MissingVariable(entry.clone()))?;
                command.env(entry, value)
            }
        };
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_permanent_and_ports_are_not_status_codes() {
        let transient = [
            "error sending request for url (http://127.0.0.1:40401/mcp): connection refused",
            "tcp connect error for http://127.0.0.1:34045/sse: Connection reset by peer",
            "HTTP 503",
            "HTTP 429",
        ];
        for message in transient {
            assert!(
                ConnectError::Initialize(message.into()).is_transient(),
                "{message}"
            );
        }
        let permanent = [
            "HTTP status client error (401 Unauthorized) for url (http://127.0.0.1:8080/sse)",
            "HTTP status client error (403 Forbidden) for url (http://127.0.0.1:8080/sse)",
            "HTTP status client error (404 Not Found) for url (http://127.0.0.1:8080/sse)",
            "Auth required",
            "authorization required: Bearer",
            "Session expired (HTTP 404)",
        ];
        for message in permanent {
            assert!(
                !ConnectError::Initialize(message.into()).is_transient(),
                "{message}"
            );
        }
    }
}
