//! The upstream side: connections to MCP servers, their tools, and calls to them.
//!
//! - [`manager`]: [`McpManager`], the set of clients: add, replace, remove, reconnect, the
//!   registry of their tools and states.
//! - [`client`]: one client's state under one lock, and the states the API reports.
//! - [`supervisor`]: the task that keeps one client connected (retries, health checks).
//! - [`call`]: the call path of one tool call (crate-private: the gateway is its caller).
//! - [`transport`]: opening sessions: stdio, streamable HTTP, legacy SSE; typed connect
//!   errors; the one upstream HTTP client factory.
//! - [`auth`]: upstream OAuth 2.1: flows, registration, tokens per client and per caller.
//! - `callers`: per-user OAuth sessions, pooled per caller.
//! - [`in_process`]: tools that a program embedding codemode implements itself.
//! - [`tools`]: each client's tools, and the direct-tool and OpenAI shapes derived from them.
//! - [`result`]: what a script receives from an MCP tool result.

pub mod auth;
pub mod call;
pub(crate) mod callers;
pub mod client;
pub mod in_process;
pub mod manager;
pub mod result;
pub mod supervisor;
pub mod tools;
pub mod transport;

pub use call::{ProgressSender, ToolAnswer};
pub use client::{ClientEvent, ClientState, ClientStatus};
pub use in_process::InProcessTool;
pub use manager::{ManagerError, McpManager};
pub use tools::ClientTools;
