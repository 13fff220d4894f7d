//! codemode: an MCP gateway whose centre is a code-mode sandbox.
//!
//! Models read short Python stubs of the tools they may use and write one script that calls them;
//! the script runs in RustPython compiled to WebAssembly, isolated in wasmtime, and every tool call
//! crosses one host boundary where it is checked and dispatched. See `DESIGN.md` in the docs and
//! the module documentation below.
//!
//! The architecture (data flow, layout, the host/guest boundary) is described in
//! `docs/architecture.md`.
//!
//! - [`agent`]: agent mode: chat requests in which the gateway runs the tools it may on its own.
//! - [`app`]: the one composition root: every subcommand builds its [`app::App`] here.
//! - [`gateway`]: the one path by which a caller lists tools, calls one, or runs code.
//! - [`code_mode`]: code mode: stubs of the registry, the meta-tools, runs with servers bound.
//! - [`config`]: the configuration file (Bifrost's shapes), `env.NAME` references, validation.
//! - [`executor`]: the sandbox: engine, limits, the host-call boundary, run results.
//! - [`llm`]: LLM providers behind the chat endpoint: routing, keys, wire protocols.
//! - [`mcp`]: upstream MCP servers: connections, tools, and the dispatch of calls.
//! - [`observe`]: observers of calls: the audit log.
//! - [`policy`]: virtual keys, request filters, the permit checked on every call.
//! - [`server`]: the HTTP service: management API and tool execution.
//! - [`store`]: SQLite persistence of runtime changes.

pub mod agent;
pub mod app;
pub mod code_mode;
pub mod config;
pub mod executor;
pub mod gateway;
pub mod llm;
pub mod mcp;
pub mod observe;
pub mod policy;
pub mod server;
pub mod store;
