//! A stdio server: a child process speaking JSON-RPC on stdin/stdout.
//!
//! The child gets a clean environment: the variables its `envs` names (or sets inline), and
//! PATH so that `npx`, `uvx` and friends resolve; nothing else of codemode's environment, where
//! the provider keys live. Dropping the session closes the child's stdin and kills it if it does
//! not exit, so no child outlives its client.

use std::process::Stdio;

use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;

use super::{ConnectError, Session, Upstream};
use crate::config::{MissingVariable, StdioConfig, resolve_env};

/// PATH for a stdio child when codemode itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Starts `stdio`'s command and opens a session over its stdin/stdout; answers with the
/// child's process id.
///
/// # Errors
/// [`ConnectError::Spawn`] when the command cannot start, [`ConnectError::MissingVariable`]
/// for an unset variable, [`ConnectError::Initialize`] when the handshake fails.
pub async fn connect(
    stdio: &StdioConfig,
    handler: Upstream,
) -> Result<(Session, Option<u32>), ConnectError> {
    let command = command(stdio)?;
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
        .map_err(ConnectError::handshake)?;
    Ok((session, pid))
}

/// The child's command line and its clean environment.
fn command(stdio: &StdioConfig) -> Result<tokio::process::Command, ConnectError> {
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
