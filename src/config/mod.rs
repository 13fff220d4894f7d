//! The configuration file: Bifrost's shapes, `env.NAME` references, validation with JSON paths.
//!
//! One file per section: [`mcp`] (clients and the tool manager), [`governance`] (virtual keys,
//! the admin token), [`providers`] (LLM providers for the chat endpoint), [`service`] (`audit`,
//! `mcp_server`), [`sandbox`](mod@sandbox) (default limits, executions at once).
//! [`env`](mod@env) reads `env.NAME` references, only when a value is used.
//!
//! Raw text becomes a validated [`Config`] once, at the edge, in one pass ([`Config::check`])
//! that collects every problem with its JSON path: each client is read on its own, so one bad
//! client does not hide the problems of the next. [`Config::parse`] fails with the first
//! problem; `codemode check` prints them all.

pub mod env;
pub mod governance;
pub mod mcp;
pub mod providers;
pub mod sandbox;
pub mod service;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use codemode_stubs::BindingLevel;
pub use env::{MissingVariable, resolve_env};
pub use governance::{
    AuthMode, GovernanceConfig, VirtualKeyClient, VirtualKeyConfig, VirtualKeyProvider,
};
pub use mcp::{
    AuthType, ClientConfig, ConnectionType, IN_PROCESS_NOT_CONFIGURABLE, McpConfig, OAuthConfig,
    RetryPolicy, StdioConfig, ToolManagerConfig,
};
pub use providers::{NetworkConfig, Protocol, ProviderConfig, ProviderKey, ProvidersConfig};
pub use sandbox::SandboxConfig;
pub use service::{AuditConfig, McpServerConfig, OAuthServiceConfig, ObservabilityConfig};

/// What a listing shows instead of a literal secret (a header value, a client secret, a key's
/// value). Sent back in an edit, it keeps the secret it stands for.
pub const REDACTED: &str = "<redacted>";

/// A configuration that parsed and validated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// MCP clients and the tool manager.
    #[serde(default)]
    pub mcp: McpConfig,
    /// Virtual keys and the admin token.
    #[serde(default)]
    pub governance: GovernanceConfig,
    /// LLM providers of `/v1/chat/completions`.
    #[serde(default, skip_serializing_if = "ProvidersConfig::is_empty")]
    pub providers: ProvidersConfig,
    /// Default limits of sandbox executions, and how many run at once.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// codemode extension: how long the audit log keeps records.
    #[serde(default)]
    pub audit: AuditConfig,
    /// codemode extension: codemode's own MCP server at `/mcp`.
    #[serde(default)]
    pub mcp_server: McpServerConfig,
    /// codemode extension: how codemode presents itself to upstream OAuth servers.
    #[serde(default)]
    pub oauth: OAuthServiceConfig,
    /// codemode extension: where traces go.
    #[serde(default)]
    pub observability: ObservabilityConfig,
}

/// A configuration that cannot be used, located by its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    /// Where: `mcp.client_configs[1].name`, or `.` for the whole document.
    pub path: String,
    /// Why.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn at(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl Config {
    /// Parses and validates a whole configuration document.
    ///
    /// # Errors
    /// The first [`ConfigError`] of [`check`](Self::check): malformed JSON, an unknown field, a
    /// wrong type, an invalid or duplicate name, a client missing what its connection type
    /// needs.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        match Config::check(text) {
            Ok(config) => Ok(config),
            Err(mut problems) => Err(problems.swap_remove(0)),
        }
    }

    /// Every problem of a configuration document, for `codemode check` (empty when it is
    /// valid).
    pub fn problems(text: &str) -> Vec<ConfigError> {
        Config::check(text).err().unwrap_or_default()
    }

    /// Reads and validates a document in one pass: the configuration, or every problem found
    /// (never an empty list).
    ///
    /// # Errors
    /// Every [`ConfigError`], the sections' first, then each client's in order.
    pub fn check(text: &str) -> Result<Config, Vec<ConfigError>> {
        let mut document: Value = parse_json(text).map_err(|error| vec![error])?;
        let clients = document
            .pointer_mut("/mcp/client_configs")
            .filter(|clients| clients.is_array())
            .map(|clients| std::mem::replace(clients, Value::Array(Vec::new())));
        let mut problems = Vec::new();
        let rest = match from_value::<Config>(&document, "") {
            Ok(rest) => {
                rest.mcp.check_settings(&mut problems);
                rest.governance.check(&mut problems);
                rest.oauth.check(&mut problems);
                rest.observability.check(&mut problems);
                rest.sandbox.check(&mut problems);
                providers::check(&rest.providers, &mut problems);
                Some(rest)
            }
            Err(error) => {
                problems.push(error);
                None
            }
        };
        let mut seen = HashSet::new();
        let mut parsed = Vec::new();
        for (index, client) in clients
            .iter()
            .flat_map(|c| c.as_array())
            .flatten()
            .enumerate()
        {
            let path = format!("mcp.client_configs[{index}]");
            match from_value::<ClientConfig>(client, &path) {
                Ok(client) => {
                    mcp::check_listed_client(index, &client, &mut seen, &mut problems);
                    parsed.push(client);
                }
                Err(error) => problems.push(error),
            }
        }
        match rest {
            Some(mut config) if problems.is_empty() => {
                config.mcp.client_configs = parsed;
                Ok(config)
            }
            _ => Err(problems),
        }
    }
}

/// The longest client name: a longer one names no client.
pub const MAX_CLIENT_NAME_BYTES: usize = 64;

/// Why a name cannot be a client name.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("must not be empty".into());
    };
    if first.is_ascii_digit() {
        return Err(format!("\"{name}\" must not start with a digit"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "\"{name}\" may only hold ASCII letters, digits, '_' and '-', not {bad:?}"
        ));
    }
    if name.len() > MAX_CLIENT_NAME_BYTES {
        return Err(format!(
            "\"{name}\" is longer than {MAX_CLIENT_NAME_BYTES} characters"
        ));
    }
    Ok(())
}

/// `field` under `path` (`path.field`, or `field` at the top).
pub(crate) fn field(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// The first problem `check` finds.
pub(crate) fn first_problem(check: impl FnOnce(&mut Vec<ConfigError>)) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    check(&mut problems);
    match problems.into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

/// Deserialises JSON, reporting the path of the first error.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let mut json = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut json).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let reason = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {inner}")
        } else {
            inner.to_string()
        };
        ConfigError::at(path, reason)
    })
}

/// Reads `value` as a `T`; error paths are prefixed with `path`, where `value` sits.
fn from_value<T: serde::de::DeserializeOwned>(value: &Value, path: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let inner = error.path().to_string();
        let at = match (path, inner.as_str()) {
            ("", inner) => inner.to_string(),
            (path, ".") => path.to_string(),
            (path, inner) => format!("{path}.{inner}"),
        };
        ConfigError::at(at, error.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_design_example_parses() {
        let text = r#"{
          "mcp": {
            "client_configs": [
              { "name": "filesystem", "connection_type": "stdio",
                "stdio_config": { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."], "envs": ["HOME"] },
                "tools_to_execute": ["*"], "tools_to_skip": [], "tools_to_auto_execute": [],
                "is_code_mode_client": true },
              { "name": "remote", "connection_type": "http", "connection_string": "env.MCP_URL",
                "headers": { "Authorization": "env.MCP_TOKEN" } }
            ],
            "tool_manager_config": { "tool_execution_timeout": 30, "max_agent_depth": 10,
                                     "code_mode_binding_level": "server" }
          },
          "governance": { "virtual_keys": [] },
          "sandbox": { "timeout_ms": 30000, "memory_mb": 256, "max_tool_calls": 1000 }
        }"#;
        let config = Config::parse(text).expect("valid");
        assert_eq!(config.mcp.client_configs.len(), 2);
        assert!(config.mcp.client_configs[0].is_code_mode_client);
        assert_eq!(config.sandbox.limits.memory_mb, Some(256));
        assert_eq!(
            config.mcp.client_configs[1].env_references(),
            ["MCP_URL", "MCP_TOKEN"]
        );
    }

    #[test]
    fn an_unknown_field_is_named_with_its_path() {
        let text = r#"{"mcp": {"client_configs": [{"name": "a", "connection_type": "stdio",
            "stdio_config": {"command": "x", "arg": []}}]}}"#;
        let error = Config::parse(text).expect_err("unknown field");
        assert_eq!(error.path, "mcp.client_configs[0].stdio_config.arg");
        assert!(error.reason.contains("unknown field `arg`"), "{error}");
    }

    #[test]
    fn one_pass_reports_the_problems_of_every_section() {
        let text = r#"{"mcp": {"tool_manager_config": {"tool_execution_timeout": 0},
            "client_configs": [{"name": "1x", "connection_type": "sse"}]},
            "governance": {"virtual_keys": [{"name": "k", "value": "a"}, {"name": "k", "value": ""}]}}"#;
        let paths: Vec<String> = Config::problems(text).into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "mcp.tool_manager_config.tool_execution_timeout",
                "governance.virtual_keys[1].value",
                "governance.virtual_keys[1].name",
                "mcp.client_configs[0].name",
                "mcp.client_configs[0].connection_string",
            ]
        );
        assert_eq!(
            Config::parse(text).map_err(|e| e.path),
            Err("mcp.tool_manager_config.tool_execution_timeout".to_string())
        );
    }

    #[test]
    fn malformed_json_says_where() {
        let error = Config::parse("{\"mcp\": {\"client_configs\": [}").expect_err("malformed");
        assert!(error.reason.starts_with("malformed JSON"), "{error}");
        assert!(error.reason.contains("line 1"), "{error}");
    }

    #[test]
    fn duplicate_and_invalid_names_are_refused() {
        let client = |name: &str| {
            format!(
                r#"{{"name": "{name}", "connection_type": "http", "connection_string": "http://x"}}"#
            )
        };
        let duplicate = format!(
            r#"{{"mcp": {{"client_configs": [{}, {}]}}}}"#,
            client("a"),
            client("a")
        );
        let error = Config::parse(&duplicate).expect_err("duplicate");
        assert_eq!(error.path, "mcp.client_configs[1].name");
        for bad in ["", "1st", "has space", "ünï"] {
            let text = format!(r#"{{"mcp": {{"client_configs": [{}]}}}}"#, client(bad));
            let error = Config::parse(&text).expect_err(bad);
            assert_eq!(error.path, "mcp.client_configs[0].name", "{bad}: {error}");
        }
    }

    #[test]
    fn a_client_needs_what_its_transport_needs() {
        let error = ClientConfig::parse(r#"{"name": "x", "connection_type": "stdio"}"#)
            .expect_err("no command");
        assert_eq!(error.path, "stdio_config");
        let error =
            ClientConfig::parse(r#"{"name": "x", "connection_type": "sse"}"#).expect_err("no url");
        assert_eq!(error.path, "connection_string");
    }

    fn with_tools(execute: Option<&[&str]>, skip: &[&str]) -> ClientConfig {
        let mut config = ClientConfig::parse(
            r#"{"name": "c", "connection_type": "stdio", "stdio_config": {"command": "x"}}"#,
        )
        .expect("valid");
        config.tools_to_execute =
            execute.map(|names| names.iter().map(|s| s.to_string()).collect());
        config.tools_to_skip = skip.iter().map(|s| s.to_string()).collect();
        config
    }

    #[test]
    fn tools_to_execute_and_skip_filter_as_documented() {
        assert!(with_tools(None, &[]).allows_tool("any"));
        assert!(with_tools(Some(&["*"]), &[]).allows_tool("any"));
        assert!(!with_tools(Some(&[]), &[]).allows_tool("any"));
        assert!(with_tools(Some(&["a"]), &[]).allows_tool("a"));
        assert!(!with_tools(Some(&["a"]), &[]).allows_tool("b"));
        assert!(!with_tools(Some(&["*"]), &["a"]).allows_tool("a"));
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_thirty() {
        let policy = RetryPolicy::default();
        let waits: Vec<u64> = (1..=7).map(|a| policy.backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn env_references_resolve_or_name_the_missing_variable() {
        assert_eq!(resolve_env("plain"), Ok("plain".to_string()));
        assert_eq!(
            resolve_env("env.CODEMODE_SURELY_UNSET_VARIABLE"),
            Err(MissingVariable("CODEMODE_SURELY_UNSET_VARIABLE".into()))
        );
        let path = std::env::var("PATH").expect("PATH is set in tests");
        assert_eq!(resolve_env("env.PATH"), Ok(path));
    }
}
