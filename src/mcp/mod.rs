//! The upstream side: connections to MCP servers, their tools, and calls to them.
//!
//! - [`connection`]: opens a session (stdio and streamable HTTP; legacy SSE follows) and lists tools.
//! - [`manager`]: the clients, their states, tool filtering, and [`McpManager`] as the sandbox's
//!   tool dispatcher.
//! - [`result`]: what a script receives from an MCP tool result.

pub mod connection;
pub mod manager;
pub mod result;

pub use manager::{ClientEvent, ClientState, ClientStatus, ManagerError, McpManager};
