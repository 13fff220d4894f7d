//! The seam between the sandbox and whatever answers its tool calls.
//!
//! The executor knows nothing of MCP: every call a script makes is handed to a
//! [`ToolDispatcher`] chosen per execution (so it can carry the caller's permissions). Tests plug
//! an in-process dispatcher; the service plugs the MCP manager.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::protocol::ErrorKind;

/// Answers the tool calls of one execution. Calls may run concurrently.
#[async_trait]
pub trait ToolDispatcher: Send + Sync + 'static {
    /// Calls `client`'s `tool` with JSON `arguments` and returns its JSON value.
    ///
    /// # Errors
    /// A [`ToolError`]; the script sees it as the matching Python exception.
    async fn call(&self, client: &str, tool: &str, arguments: Value) -> Result<Value, ToolError>;
}

/// Why a tool call failed. Each variant reaches Python as its own exception type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    /// The tool ran and reported an error (MCP `isError`, or an upstream JSON-RPC error).
    #[error("{0}")]
    Failed(String),
    /// No such client or tool.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not use this tool. The message is shown to the script.
    #[error("{0}")]
    Denied(String),
    /// The arguments do not fit the tool.
    #[error("{0}")]
    InvalidArguments(String),
    /// The tool did not answer in time.
    #[error("the tool did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The tool's server is not connected.
    #[error("{0}")]
    Unavailable(String),
    /// The server needs the caller's own OAuth authorization first (per-user OAuth); nothing
    /// was sent to it.
    #[error("{client} needs your authorization first: open {authorize_url} and try again")]
    AuthRequired {
        /// The client that needs it.
        client: String,
        /// Where the caller authorizes it.
        authorize_url: String,
    },
}

impl ToolError {
    /// The Python exception the script receives.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ToolError::Failed(_) | ToolError::NotFound(_) => ErrorKind::ToolError,
            ToolError::Denied(_) => ErrorKind::PermissionError,
            ToolError::InvalidArguments(_) => ErrorKind::TypeError,
            ToolError::Timeout(_) => ErrorKind::ToolTimeoutError,
            ToolError::Unavailable(_) => ErrorKind::ToolUnavailableError,
            ToolError::AuthRequired { .. } => ErrorKind::AuthRequiredError,
        }
    }
}

/// A dispatcher that has no tools: every call fails with [`ToolError::NotFound`].
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTools;

#[async_trait]
impl ToolDispatcher for NoTools {
    async fn call(&self, client: &str, tool: &str, _arguments: Value) -> Result<Value, ToolError> {
        Err(ToolError::NotFound(format!(
            "no tool {client}.{tool}: this execution has no tools configured"
        )))
    }
}
