//! Shared fixtures of the integration tests, by what they stand up.
//!
//! - [`sandbox`]: one executor for the whole binary, runs, in-process test tools.
//! - [`servers`]: the real MCP servers (npm, PyPI) as client configurations and processes.
//! - [`gateway`]: a manager with the gateway in front of it.
//! - [`http`]: the service's router and requests through it.
//! - [`llm`]: an LLM provider double speaking OpenAI's protocol.
//! - [`browser`]: headless Chromium through chromedriver, and the service it browses.

pub mod browser;
pub mod gateway;
pub mod http;
pub mod llm;
pub mod process;
pub mod sandbox;
pub mod servers;

pub use gateway::{Managed, open_calls};
pub use http::{app_state, call, send, text};
pub use sandbox::{EXECUTOR, TestTools, limits, run, run_ok, run_with};
pub use servers::{HttpServer, manager, python_client, stdio_client};
