//! The configuration file: Bifrost's shapes, `env.NAME` references, validation with JSON paths.
//!
//! [`Config::parse`] turns text into a validated [`Config`] once, at the edge; everything after
//! works with typed values. Secrets stay references: a string `"env.NAME"` is kept as written and
//! only [`resolve_env`] reads the variable, when a client connects, so a missing variable fails
//! that one client (naming the variable) rather than the whole start-up, and nothing stored or
//! listed ever contains a resolved secret.
//!
//! Bifrost documents client names without hyphens, yet its own examples use them
//! (`"web-search"`); codemode accepts `[A-Za-z0-9_-]` not starting with a digit and addresses a
//! tool as `<client>-<tool>` by the longest client name that matches (see `mcp::registry`).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::executor::LimitOverrides;

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
    /// LLM providers (kept as written until the chat layer reads them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub providers: Option<Value>,
    /// Default limits of sandbox executions.
    #[serde(default)]
    pub sandbox: LimitOverrides,
    /// codemode extension: how long the audit log keeps records.
    #[serde(default)]
    pub audit: AuditConfig,
    /// codemode extension: codemode's own MCP server at `/mcp`.
    #[serde(default)]
    pub mcp_server: McpServerConfig,
}

/// `mcp_server`: who may reach `/mcp` by name. DNS-rebinding protection: a request whose `Host`
/// is not listed is refused; by default only `localhost`, `127.0.0.1` and `::1` are. List the
/// names a deployment is reached by (`"example.com"`, `"example.com:8080"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpServerConfig {
    /// Accepted `Host` headers (empty: the localhost names).
    pub allowed_hosts: Vec<String>,
    /// Accepted `Origin` headers of browser requests (empty: any request without a
    /// cross-origin `Origin`).
    pub allowed_origins: Vec<String>,
}

/// The `governance` section. Bifrost's other governance settings (budgets, rate limits,
/// customers, teams) are accepted and ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GovernanceConfig {
    /// Virtual keys: who may call which tools.
    #[serde(default)]
    pub virtual_keys: Vec<VirtualKeyConfig>,
    /// codemode extension: the token (usually `env.NAME`) that guards `/api/*`; without one
    /// the management API is open (it listens on localhost by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Bifrost settings codemode does not implement.
    #[serde(flatten)]
    pub ignored: BTreeMap<String, Value>,
}

/// One virtual key (`governance.virtual_keys[]`, or a `/api/governance/virtual-keys` body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualKeyConfig {
    /// Bifrost's id; kept, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Unique name, recorded in the audit log.
    pub name: String,
    /// The key callers present (usually `env.NAME`). Only its hash is stored.
    pub value: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A disabled key is refused like an unknown one.
    #[serde(default = "enabled", alias = "enabled")]
    pub is_active: bool,
    /// The clients it may use and, for each, which tools. A client not listed is not allowed.
    #[serde(default)]
    pub mcp_configs: Vec<VirtualKeyClient>,
}

fn enabled() -> bool {
    true
}

/// One client a virtual key may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualKeyClient {
    /// The client.
    pub mcp_client_name: String,
    /// `["*"]` all, `[]` none, tool names, or `<client>-*`.
    #[serde(default)]
    pub tools_to_execute: Vec<String>,
}

impl VirtualKeyConfig {
    /// Parses and validates one virtual key (a `/api/governance/virtual-keys` body).
    ///
    /// # Errors
    /// The first [`ConfigError`], with paths relative to the object.
    pub fn parse(text: &str) -> Result<VirtualKeyConfig, ConfigError> {
        let key: VirtualKeyConfig = parse_json(text)?;
        key.validate("")?;
        Ok(key)
    }

    /// Checks the name and that a value is given; `path` prefixes the error paths.
    ///
    /// # Errors
    /// The first [`ConfigError`].
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let at = |field: &str| match path {
            "" => field.to_string(),
            path => format!("{path}.{field}"),
        };
        check_name(&self.name).map_err(|reason| ConfigError::at(at("name"), reason))?;
        if self.value.trim().is_empty() {
            return Err(ConfigError::at(at("value"), "must not be empty"));
        }
        Ok(())
    }
}

/// `audit`: retention of the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Records older than this many days are deleted.
    pub retention_days: u64,
    /// At most this many records are kept (the oldest go first).
    pub max_records: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_days: 30,
            max_records: 1_000_000,
        }
    }
}

/// The `mcp` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// The upstream MCP servers.
    #[serde(default)]
    pub client_configs: Vec<ClientConfig>,
    /// Settings shared by every client.
    #[serde(default)]
    pub tool_manager_config: ToolManagerConfig,
}

/// `mcp.tool_manager_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolManagerConfig {
    /// Seconds a tool call may take unless its client says otherwise.
    pub tool_execution_timeout: u64,
    /// Most tool-call rounds of one agent-mode request.
    pub max_agent_depth: u32,
    /// One stub file per client (`server`) or per tool (`tool`).
    pub code_mode_binding_level: BindingLevel,
    /// codemode extension: how failed connections are retried.
    pub connect_retry: RetryPolicy,
    /// codemode extension: milliseconds between health checks of a connected client.
    pub health_check_interval_ms: u64,
}

impl Default for ToolManagerConfig {
    fn default() -> Self {
        ToolManagerConfig {
            tool_execution_timeout: 30,
            max_agent_depth: 10,
            code_mode_binding_level: BindingLevel::Server,
            connect_retry: RetryPolicy::default(),
            health_check_interval_ms: 10_000,
        }
    }
}

/// Retries of a connection that failed for a transient reason (refused, reset, 5xx, 429):
/// `initial_backoff_ms`, doubling, capped at `max_backoff_ms`, `max_tries` attempts in all.
/// Permanent failures (command not found, 401/403, a bad handshake) are not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_tries: u32,
    /// Wait before the second attempt.
    pub initial_backoff_ms: u64,
    /// Longest wait between attempts.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_tries: 5,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 30_000,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        std::time::Duration::from_millis(
            self.initial_backoff_ms
                .saturating_mul(factor)
                .min(self.max_backoff_ms),
        )
    }
}

pub use codemode_stubs::BindingLevel;

/// How codemode reaches an MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionType {
    /// A child process speaking JSON-RPC on stdin/stdout.
    Stdio,
    /// Streamable HTTP.
    Http,
    /// Legacy HTTP+SSE.
    Sse,
    /// Tools a Rust program registered in its own process
    /// ([`McpManager::add_in_process`](crate::mcp::McpManager::add_in_process)); never from a file.
    #[serde(rename = "inprocess")]
    InProcess,
}

/// One upstream MCP server (`mcp.client_configs[]`, or a `POST /api/mcp/client` body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Unique name; prefixes the client's tools (`<name>-<tool>`).
    pub name: String,
    /// Transport.
    pub connection_type: ConnectionType,
    /// The command of a stdio client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio_config: Option<StdioConfig>,
    /// The URL of an HTTP or SSE client (may be `env.NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// Static HTTP headers (values may be `env.NAME`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Tools that may run: absent or `["*"]` all, `[]` none, else these names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools_to_execute: Option<Vec<String>>,
    /// Tools removed from what `tools_to_execute` allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_to_skip: Vec<String>,
    /// Tools that agent mode runs without asking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_to_auto_execute: Vec<String>,
    /// Serve this client's tools as code-mode stubs instead of direct tools.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_code_mode_client: bool,
    /// Seconds one call may take (default: `tool_manager_config.tool_execution_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_execution_timeout: Option<u64>,
}

/// `stdio_config` of a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdioConfig {
    /// The program to start.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables passed to the child: `NAME` (taken from codemode's environment) or
    /// `NAME=value`. Nothing else of codemode's environment reaches the child but a minimal PATH.
    #[serde(default)]
    pub envs: Vec<String>,
}

/// Why an `inprocess` client cannot come from a file or the API.
pub const IN_PROCESS_NOT_CONFIGURABLE: &str =
    "inprocess clients are registered by a program that embeds codemode, not configured";

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
    fn at(path: impl Into<String>, reason: impl Into<String>) -> Self {
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
    /// The first [`ConfigError`]: malformed JSON, an unknown field, a wrong type, an invalid or
    /// duplicate client name, a client missing what its connection type needs.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = parse_json(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: names, their uniqueness, per-type requirements.
    ///
    /// # Errors
    /// The first [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        for (index, client) in self.mcp.client_configs.iter().enumerate() {
            check_listed_client(index, client, &mut seen)?;
        }
        if self.mcp.tool_manager_config.tool_execution_timeout == 0 {
            return Err(ConfigError::at(
                "mcp.tool_manager_config.tool_execution_timeout",
                "must be at least 1 second",
            ));
        }
        let mut names = HashSet::new();
        for (index, key) in self.governance.virtual_keys.iter().enumerate() {
            let path = format!("governance.virtual_keys[{index}]");
            key.validate(&path)?;
            if !names.insert(key.name.as_str()) {
                return Err(ConfigError::at(
                    format!("{path}.name"),
                    format!("duplicate virtual key name \"{}\"", key.name),
                ));
            }
        }
        Ok(())
    }

    /// Every problem of a configuration document, for `codemode check`. Each client is read on
    /// its own, so one bad client does not hide the problems of the next.
    pub fn problems(text: &str) -> Vec<ConfigError> {
        let mut document: Value = match parse_json(text) {
            Ok(document) => document,
            Err(error) => return vec![error],
        };
        let clients = document
            .pointer_mut("/mcp/client_configs")
            .filter(|clients| clients.is_array())
            .map(|clients| std::mem::replace(clients, Value::Array(Vec::new())));
        let mut problems = Vec::new();
        match from_value::<Config>(&document, "") {
            Ok(rest) => problems.extend(rest.validate().err()),
            Err(error) => problems.push(error),
        }
        let mut seen = HashSet::new();
        for (index, client) in clients
            .iter()
            .flat_map(|c| c.as_array())
            .flatten()
            .enumerate()
        {
            let path = format!("mcp.client_configs[{index}]");
            match from_value::<ClientConfig>(client, &path) {
                Ok(client) => problems.extend(check_listed_client(index, &client, &mut seen).err()),
                Err(error) => problems.push(error),
            }
        }
        problems
    }
}

/// Checks client number `index` of a document: valid, not in-process, its name not in `seen`.
fn check_listed_client(
    index: usize,
    client: &ClientConfig,
    seen: &mut HashSet<String>,
) -> Result<(), ConfigError> {
    let path = format!("mcp.client_configs[{index}]");
    client.validate(&path)?;
    if client.connection_type == ConnectionType::InProcess {
        return Err(ConfigError::at(
            format!("{path}.connection_type"),
            IN_PROCESS_NOT_CONFIGURABLE,
        ));
    }
    if !seen.insert(client.name.clone()) {
        return Err(ConfigError::at(
            format!("{path}.name"),
            format!("duplicate client name \"{}\"", client.name),
        ));
    }
    Ok(())
}

impl ClientConfig {
    /// Parses and validates one client object (a `POST /api/mcp/client` body).
    ///
    /// # Errors
    /// The first [`ConfigError`], with paths relative to the object.
    pub fn parse(text: &str) -> Result<ClientConfig, ConfigError> {
        let client: ClientConfig = parse_json(text)?;
        client.validate("")?;
        Ok(client)
    }

    /// The configuration of an in-process client named `name`: every tool allowed.
    ///
    /// # Errors
    /// A [`ConfigError`] at `name` when it is not a valid client name.
    pub fn in_process(name: &str) -> Result<ClientConfig, ConfigError> {
        check_name(name).map_err(|reason| ConfigError::at("name", reason))?;
        Ok(ClientConfig {
            name: name.to_string(),
            connection_type: ConnectionType::InProcess,
            stdio_config: None,
            connection_string: None,
            headers: BTreeMap::new(),
            tools_to_execute: None,
            tools_to_skip: Vec::new(),
            tools_to_auto_execute: Vec::new(),
            is_code_mode_client: false,
            tool_execution_timeout: None,
        })
    }

    /// Validates this client; `path` prefixes the error paths.
    ///
    /// # Errors
    /// The first [`ConfigError`].
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let at = |field: &str| {
            if path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            }
        };
        if let Err(reason) = check_name(&self.name) {
            return Err(ConfigError::at(at("name"), reason));
        }
        match self.connection_type {
            ConnectionType::Stdio => match &self.stdio_config {
                None => {
                    return Err(ConfigError::at(
                        at("stdio_config"),
                        "required for a stdio client",
                    ));
                }
                Some(stdio) if stdio.command.trim().is_empty() => {
                    return Err(ConfigError::at(
                        at("stdio_config.command"),
                        "must not be empty",
                    ));
                }
                Some(_) => {}
            },
            ConnectionType::Http | ConnectionType::Sse => match self.connection_string.as_deref() {
                None | Some("") => {
                    return Err(ConfigError::at(
                        at("connection_string"),
                        "required for an http or sse client",
                    ));
                }
                Some(_) => {}
            },
            // Registered by the embedding program; only its tool lists are configured.
            ConnectionType::InProcess => {}
        }
        if self.tool_execution_timeout == Some(0) {
            return Err(ConfigError::at(
                at("tool_execution_timeout"),
                "must be at least 1 second",
            ));
        }
        Ok(())
    }

    /// Whether this configuration lets `tool` run: `tools_to_execute` absent or `["*"]` allows
    /// all, `[]` none, else the names it lists; `tools_to_skip` then removes names.
    pub fn allows_tool(&self, tool: &str) -> bool {
        let listed = match &self.tools_to_execute {
            None => true,
            Some(names) => names.iter().any(|n| n == "*" || n == tool),
        };
        listed && !self.tools_to_skip.iter().any(|n| n == tool)
    }

    /// Whether `other` reaches the server the same way (only tool settings differ).
    pub fn same_connection(&self, other: &ClientConfig) -> bool {
        self.connection_type == other.connection_type
            && self.stdio_config == other.stdio_config
            && self.connection_string == other.connection_string
            && self.headers == other.headers
    }

    /// This configuration with literal header values hidden; `env.NAME` references are shown,
    /// being names.
    pub fn redacted(&self) -> ClientConfig {
        let mut config = self.clone();
        for value in config.headers.values_mut() {
            if !value.starts_with("env.") {
                *value = "<redacted>".into();
            }
        }
        config
    }

    /// The names of every `env.NAME` reference this client uses.
    pub fn env_references(&self) -> Vec<String> {
        let mut strings: Vec<&str> = Vec::new();
        strings.extend(self.connection_string.as_deref());
        strings.extend(self.headers.values().map(String::as_str));
        if let Some(stdio) = &self.stdio_config {
            strings.push(&stdio.command);
            strings.extend(stdio.args.iter().map(String::as_str));
        }
        let mut names: Vec<String> = strings
            .into_iter()
            .filter_map(|s| s.strip_prefix("env.").map(str::to_string))
            .collect();
        if let Some(stdio) = &self.stdio_config {
            names.extend(stdio.envs.iter().filter(|e| !e.contains('=')).cloned());
        }
        names
    }
}

/// Why a name cannot be a client name.
fn check_name(name: &str) -> Result<(), String> {
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
    if name.len() > 64 {
        return Err(format!("\"{name}\" is longer than 64 characters"));
    }
    Ok(())
}

/// An `env.NAME` reference whose variable is not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {0} is not set")]
pub struct MissingVariable(pub String);

/// Reads `value` as written, or the environment variable it names when it is `env.NAME`.
///
/// # Errors
/// [`MissingVariable`] naming the variable that is not set.
pub fn resolve_env(value: &str) -> Result<String, MissingVariable> {
    match value.strip_prefix("env.") {
        Some(name) => std::env::var(name).map_err(|_| MissingVariable(name.to_string())),
        None => Ok(value.to_string()),
    }
}

/// Deserialises JSON, reporting the path of the first error.
fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
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
        assert_eq!(config.sandbox.memory_mb, Some(256));
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
