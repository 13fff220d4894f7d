//! Opening a session with one upstream MCP server and listing its tools.
//!
//! A stdio child gets a clean environment: the variables its `envs` names (or sets inline), and
//! PATH so that `npx`, `uvx` and friends resolve; nothing else of codemode's environment, where
//! the provider keys live. Dropping the session closes the child's stdin and kills it if it does
//! not exit, so no child outlives its client.

use std::process::Stdio;

use rmcp::model::Tool;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};

use crate::config::{ClientConfig, ConnectionType, MissingVariable, StdioConfig, resolve_env};

/// A live MCP session with an upstream server.
pub type Session = RunningService<RoleClient, ()>;

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
    /// A transport this build cannot open yet.
    #[error("{0} connections are not supported yet")]
    Unsupported(&'static str),
}

/// Connects `config`'s server and lists its tools.
///
/// # Errors
/// A [`ConnectError`] saying which step failed and why.
pub async fn connect(config: &ClientConfig) -> Result<(Session, Vec<Tool>), ConnectError> {
    let session = match config.connection_type {
        ConnectionType::Stdio => match &config.stdio_config {
            Some(stdio) => connect_stdio(stdio).await?,
            None => return Err(ConnectError::Initialize("no stdio_config".into())),
        },
        ConnectionType::Http => return Err(ConnectError::Unsupported("streamable HTTP")),
        ConnectionType::Sse => return Err(ConnectError::Unsupported("SSE")),
    };
    let tools = session
        .list_all_tools()
        .await
        .map_err(|e| ConnectError::ListTools(e.to_string()))?;
    Ok((session, tools))
}

async fn connect_stdio(stdio: &StdioConfig) -> Result<Session, ConnectError> {
    let command = stdio_command(stdio)?;
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| ConnectError::Spawn {
            command: stdio.command.clone(),
            source,
        })?;
    ().serve(transport)
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
