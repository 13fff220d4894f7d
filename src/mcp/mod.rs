//! The upstream side: connections to MCP servers, their tools, and calls to them.
//!
//! - [`connection`]: opens a session (stdio, streamable HTTP, legacy SSE) and lists tools.
//! - [`sse`]: the legacy HTTP+SSE client transport, which rmcp does not provide.
//! - [`manager`]: the clients, their states, tool filtering, and [`McpManager`] as the sandbox's
//!   tool dispatcher.
//! - [`result`]: what a script receives from an MCP tool result.

pub mod connection;
pub mod manager;
pub mod result;
pub mod sse;

pub use manager::{ClientEvent, ClientState, ClientStatus, ManagerError, McpManager};
