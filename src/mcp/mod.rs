//! The upstream side: connections to MCP servers, their tools, and calls to them.
//!
//! - [`connection`]: opens a session (stdio, streamable HTTP, legacy SSE) and lists tools.
//! - [`in_process`]: tools that a program embedding codemode implements itself.
//! - [`sse`]: the legacy HTTP+SSE client transport, which rmcp does not provide.
//! - [`manager`]: the clients, their states, tool filtering, and [`McpManager`] as the sandbox's
//!   tool dispatcher.
//! - [`registry`]: each client's tools with full definitions, and the OpenAI-style tool list.
//! - [`result`]: what a script receives from an MCP tool result.

pub mod connection;
pub mod in_process;
pub mod manager;
pub mod registry;
pub mod result;
pub mod sse;

pub use in_process::InProcessTool;
pub use manager::{
    ClientEvent, ClientState, ClientStatus, ManagerError, McpManager, ProgressSender, ToolAnswer,
};
pub use registry::ClientTools;
