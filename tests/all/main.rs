//! Integration tests: one binary, one file per feature, all against the real sandbox.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod agent;
mod chat;
mod cli;
mod code_mode;
mod config_files;
mod http_api;
mod mcp_health;
mod mcp_http;
mod mcp_oauth;
mod mcp_oauth_hostile;
mod mcp_registry;
mod mcp_server;
mod mcp_stdio;
mod metrics;
mod observability;
mod policy;
mod sandbox_cases;
mod sandbox_isolation;
mod sandbox_limits;
mod sandbox_results;
mod sandbox_security;
mod sandbox_tools;
mod serve_process;
mod support;
mod ui;
mod ui_access;
