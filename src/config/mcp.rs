//! The `mcp` section: the upstream clients and the tool manager's settings.
//!
//! Bifrost documents client names without hyphens, yet its own examples use them
//! (`"web-search"`); codemode accepts `[A-Za-z0-9_-]` not starting with a digit and addresses a
//! tool as `<client>-<tool>` by the longest client name that matches.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{ConfigError, REDACTED, check_name, field, first_problem, parse_json};

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
    /// Leave the caller's tools alone in chat requests: no MCP tool is added to them.
    pub disable_auto_tool_inject: bool,
}

/// The model turns one agent-mode request may take (`max_agent_depth`).
pub const AGENT_DEPTHS: std::ops::RangeInclusive<u32> = 1..=50;

impl Default for ToolManagerConfig {
    fn default() -> Self {
        ToolManagerConfig {
            tool_execution_timeout: 30,
            max_agent_depth: 10,
            code_mode_binding_level: BindingLevel::Server,
            connect_retry: RetryPolicy::default(),
            health_check_interval_ms: 10_000,
            disable_auto_tool_inject: false,
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
    /// How an HTTP or SSE client authenticates upstream: static `headers` (the default),
    /// `oauth` (one token for the client) or `per_user_oauth` (one token per caller).
    #[serde(default, skip_serializing_if = "AuthType::is_headers")]
    pub auth_type: AuthType,
    /// OAuth settings; whatever is unset is discovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_config: Option<OAuthConfig>,
}

/// `auth_type` of a client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    /// Static headers only.
    #[default]
    Headers,
    /// OAuth 2.1: the operator authorizes once; every call uses that token.
    Oauth,
    /// OAuth 2.1 per caller: each virtual key authorizes on its own; the tool list comes from
    /// the operator's authorization.
    PerUserOauth,
}

impl AuthType {
    fn is_headers(&self) -> bool {
        *self == AuthType::Headers
    }

    /// Whether the client uses OAuth at all.
    pub fn is_oauth(self) -> bool {
        self != AuthType::Headers
    }
}

/// `oauth_config` of a client (Bifrost's shape). Every field may be `env.NAME`; whatever is
/// unset is discovered from the server (RFC 9728, RFC 8414, OpenID configuration) or
/// registered (Client ID Metadata Document, else RFC 7591).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// A client id registered with the authorization server beforehand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Its secret (a confidential client). Sealed at rest, never returned by the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Scopes to ask for (default: the server's challenge, else its `scopes_supported`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The authorization endpoint, instead of the discovered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// The token endpoint, instead of the discovered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// The registration endpoint, instead of the discovered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_url: Option<String>,
    /// The RFC 8707 resource indicator, instead of the discovered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

impl std::fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = self.client_secret.as_ref().map(|s| {
            if s.starts_with("env.") {
                s.as_str()
            } else {
                REDACTED
            }
        });
        f.debug_struct("OAuthConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &secret)
            .field("scopes", &self.scopes)
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .field("registration_url", &self.registration_url)
            .field("resource", &self.resource)
            .finish()
    }
}

impl OAuthConfig {
    /// Every string field that may be an `env.NAME` reference.
    fn strings(&self) -> impl Iterator<Item = &str> {
        [
            &self.client_id,
            &self.client_secret,
            &self.authorize_url,
            &self.token_url,
            &self.registration_url,
            &self.resource,
        ]
        .into_iter()
        .filter_map(|field| field.as_deref())
    }
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

/// Whether `url` may be an OAuth endpoint: HTTPS, or HTTP to a loopback host.
///
/// # Errors
/// Why not.
pub fn check_oauth_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("must be https (or http to a loopback host)".into()),
    }
}

/// Why an `inprocess` client cannot come from a file or the API.
pub const IN_PROCESS_NOT_CONFIGURABLE: &str =
    "inprocess clients are registered by a program that embeds codemode, not configured";

impl ClientConfig {
    /// Parses and validates one client object (a `POST /api/mcp/client` body).
    ///
    /// # Errors
    /// The first [`ConfigError`], with paths relative to the object.
    pub fn parse(text: &str) -> Result<ClientConfig, ConfigError> {
        let client: ClientConfig = parse_json(text)?;
        first_problem(|problems| client.check("", problems))?;
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
            auth_type: AuthType::Headers,
            oauth_config: None,
        })
    }

    /// Adds to `problems` what is wrong with this client: its name, what its connection type
    /// needs, its timeout; `path` prefixes the error paths.
    pub fn check(&self, path: &str, problems: &mut Vec<ConfigError>) {
        let mut problem = |name: &str, reason: &str| {
            problems.push(ConfigError::at(field(path, name), reason));
        };
        if let Err(reason) = check_name(&self.name) {
            problem("name", &reason);
        }
        match self.connection_type {
            ConnectionType::Stdio => match &self.stdio_config {
                None => problem("stdio_config", "required for a stdio client"),
                Some(stdio) if stdio.command.trim().is_empty() => {
                    problem("stdio_config.command", "must not be empty");
                }
                Some(_) => {}
            },
            ConnectionType::Http | ConnectionType::Sse => {
                if self
                    .connection_string
                    .as_deref()
                    .unwrap_or_default()
                    .is_empty()
                {
                    problem("connection_string", "required for an http or sse client");
                }
            }
            // Registered by the embedding program; only its tool lists are configured.
            ConnectionType::InProcess => {}
        }
        if self.tool_execution_timeout == Some(0) {
            problem("tool_execution_timeout", "must be at least 1 second");
        }
        let over_http = matches!(
            self.connection_type,
            ConnectionType::Http | ConnectionType::Sse
        );
        if self.auth_type.is_oauth() && !over_http {
            problem("auth_type", "OAuth needs an http or sse client");
        }
        if self.oauth_config.is_some() && !self.auth_type.is_oauth() {
            problem(
                "oauth_config",
                "needs \"auth_type\": \"oauth\" or \"per_user_oauth\"",
            );
        }
        if let Some(oauth) = &self.oauth_config {
            if oauth.client_secret.is_some() && oauth.client_id.is_none() {
                problem("oauth_config.client_secret", "needs a client_id");
            }
            let urls = [
                ("authorize_url", &oauth.authorize_url),
                ("token_url", &oauth.token_url),
                ("registration_url", &oauth.registration_url),
                ("resource", &oauth.resource),
            ];
            for (name, url) in urls {
                if let Some(url) = url.as_deref().filter(|u| !u.starts_with("env."))
                    && let Err(reason) = check_oauth_url(url)
                {
                    problem(&format!("oauth_config.{name}"), &reason);
                }
            }
        }
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

    /// Whether agent mode may run `tool` without asking: it must be allowed at all, and
    /// `tools_to_auto_execute` must hold `"*"` or its name (absent or empty: nothing).
    pub fn auto_executes(&self, tool: &str) -> bool {
        self.allows_tool(tool)
            && self
                .tools_to_auto_execute
                .iter()
                .any(|n| n == "*" || n == tool)
    }

    /// Whether `other` reaches the server the same way (only tool settings differ).
    pub fn same_connection(&self, other: &ClientConfig) -> bool {
        self.connection_type == other.connection_type
            && self.stdio_config == other.stdio_config
            && self.connection_string == other.connection_string
            && self.headers == other.headers
            && self.auth_type == other.auth_type
            && self.oauth_config == other.oauth_config
    }

    /// This configuration with literal header values hidden; `env.NAME` references are shown,
    /// being names.
    pub fn redacted(&self) -> ClientConfig {
        let mut config = self.clone();
        let secrets = config.headers.values_mut().chain(
            config
                .oauth_config
                .as_mut()
                .and_then(|oauth| oauth.client_secret.as_mut()),
        );
        for value in secrets {
            if !value.starts_with("env.") {
                *value = REDACTED.into();
            }
        }
        config
    }

    /// Puts back, from `current`, each secret this configuration carries as `<redacted>` (a
    /// listing edited and sent back), so the placeholder never replaces a real header value or
    /// client secret.
    pub fn restore_redacted(&mut self, current: &ClientConfig) {
        for (name, value) in &mut self.headers {
            if let (REDACTED, Some(kept)) = (value.as_str(), current.headers.get(name)) {
                value.clone_from(kept);
            }
        }
        let kept = current
            .oauth_config
            .as_ref()
            .and_then(|oauth| oauth.client_secret.as_ref());
        let secret = self
            .oauth_config
            .as_mut()
            .and_then(|oauth| oauth.client_secret.as_mut());
        if let (Some(secret), Some(kept)) = (secret, kept)
            && secret == REDACTED
        {
            secret.clone_from(kept);
        }
    }

    /// The names of every `env.NAME` reference this client uses.
    pub fn env_references(&self) -> Vec<String> {
        let mut strings: Vec<&str> = Vec::new();
        strings.extend(self.connection_string.as_deref());
        strings.extend(self.headers.values().map(String::as_str));
        strings.extend(self.oauth_config.iter().flat_map(OAuthConfig::strings));
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

impl McpConfig {
    /// Adds every problem of the section but its clients to `problems` (each client is read and
    /// checked on its own, see [`check_listed_client`]).
    pub fn check_settings(&self, problems: &mut Vec<ConfigError>) {
        if self.tool_manager_config.tool_execution_timeout == 0 {
            problems.push(ConfigError::at(
                "mcp.tool_manager_config.tool_execution_timeout",
                "must be at least 1 second",
            ));
        }
        if !AGENT_DEPTHS.contains(&self.tool_manager_config.max_agent_depth) {
            problems.push(ConfigError::at(
                "mcp.tool_manager_config.max_agent_depth",
                "must be between 1 and 50",
            ));
        }
    }
}

/// Adds to `problems` what is wrong with client number `index` of a document: its own
/// problems, an in-process type (never from a file), a name already in `seen`.
pub fn check_listed_client(
    index: usize,
    client: &ClientConfig,
    seen: &mut HashSet<String>,
    problems: &mut Vec<ConfigError>,
) {
    let path = format!("mcp.client_configs[{index}]");
    client.check(&path, problems);
    if client.connection_type == ConnectionType::InProcess {
        problems.push(ConfigError::at(
            format!("{path}.connection_type"),
            IN_PROCESS_NOT_CONFIGURABLE,
        ));
    }
    if !seen.insert(client.name.clone()) {
        problems.push(ConfigError::at(
            format!("{path}.name"),
            format!("duplicate client name \"{}\"", client.name),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(client: &str) -> Vec<String> {
        let client: ClientConfig = serde_json::from_str(client).expect("shape");
        let mut problems = Vec::new();
        client.check("", &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn oauth_settings_are_checked_where_they_are_written() {
        assert_eq!(
            problems(
                r#"{"name": "a", "connection_type": "stdio", "stdio_config": {"command": "x"}, "auth_type": "oauth"}"#
            ),
            ["auth_type: OAuth needs an http or sse client"]
        );
        assert_eq!(
            problems(
                r#"{"name": "a", "connection_type": "http", "connection_string": "https://a", "oauth_config": {}}"#
            ),
            ["oauth_config: needs \"auth_type\": \"oauth\" or \"per_user_oauth\""]
        );
        assert_eq!(
            problems(
                r#"{"name": "a", "connection_type": "http", "connection_string": "https://a",
                    "auth_type": "oauth", "oauth_config": {"client_secret": "s",
                    "token_url": "http://login.example/token", "authorize_url": "env.AUTH_URL"}}"#
            ),
            [
                "oauth_config.client_secret: needs a client_id",
                "oauth_config.token_url: must be https (or http to a loopback host)"
            ]
        );
        assert!(problems(
            r#"{"name": "a", "connection_type": "sse", "connection_string": "http://127.0.0.1:1/sse",
                "auth_type": "per_user_oauth", "oauth_config": {"token_url": "http://localhost:9/token"}}"#
        )
        .is_empty());
    }

    #[test]
    fn a_client_secret_is_redacted_and_its_variables_listed() {
        let client = ClientConfig::parse(
            r#"{"name": "a", "connection_type": "http", "connection_string": "https://a",
                "auth_type": "oauth", "oauth_config": {"client_id": "env.ID", "client_secret": "s3cret"}}"#,
        )
        .expect("valid");
        let shown = serde_json::to_string(&client.redacted()).expect("json");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("env.ID"), "{shown}");
        assert_eq!(client.env_references(), ["ID"]);
    }
}
