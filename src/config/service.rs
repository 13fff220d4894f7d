//! Sections about codemode's own service: `audit` (retention of the audit log), `mcp_server`
//! (who may reach `/mcp`) and `oauth` (how codemode presents itself to upstream OAuth servers).
//! All are codemode extensions.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `observability`: where traces go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObservabilityConfig {
    /// An OTLP/HTTP collector (`http://localhost:4318`): spans are exported to
    /// `<otlp_endpoint>/v1/traces`. Unset: no traces leave the process.
    pub otlp_endpoint: Option<String>,
}

impl ObservabilityConfig {
    /// Adds what is wrong with the section to `problems`.
    pub fn check(&self, problems: &mut Vec<ConfigError>) {
        if let Some(endpoint) = &self.otlp_endpoint
            && url::Url::parse(endpoint)
                .map(|url| !matches!(url.scheme(), "http" | "https"))
                .unwrap_or(true)
        {
            problems.push(ConfigError::at(
                "observability.otlp_endpoint",
                "must be an http(s) URL",
            ));
        }
    }
}

/// `oauth`: codemode as an OAuth client of upstream MCP servers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthServiceConfig {
    /// The URL browsers reach codemode at (`https://codemode.example.com`). Authorization
    /// servers redirect to `<public_url>/api/oauth/callback`; when it is HTTPS, codemode's
    /// Client ID Metadata Document is `<public_url>/oauth/client-metadata.json`. Default:
    /// `http://localhost:<port>` of `codemode serve`.
    pub public_url: Option<String>,
    /// The URL of codemode's Client ID Metadata Document, when it is served elsewhere than
    /// `<public_url>/oauth/client-metadata.json` (it must be HTTPS).
    pub client_metadata_url: Option<String>,
    /// A request header that names the end user behind a virtual key (`x-user-id`), for
    /// per-user OAuth: one token per (key, user). Set it only when whatever sits in front of
    /// codemode sets that header itself; unset, the virtual key alone is the caller.
    pub trusted_user_header: Option<String>,
}

impl OAuthServiceConfig {
    /// codemode's Client ID Metadata Document URL: the configured one, else
    /// `<public_url>/oauth/client-metadata.json` when `public_url` is HTTPS (a client id URL
    /// must be); else none, and codemode registers dynamically.
    pub fn client_metadata_url(&self) -> Option<String> {
        if let Some(url) = &self.client_metadata_url {
            return Some(url.clone());
        }
        let public = self.public_url.as_deref()?;
        public.starts_with("https://").then(|| {
            format!(
                "{}{}",
                public.trim_end_matches('/'),
                crate::mcp::auth::METADATA_DOCUMENT_PATH
            )
        })
    }

    /// Adds what is wrong with the section to `problems`.
    pub fn check(&self, problems: &mut Vec<ConfigError>) {
        if let Some(url) = &self.public_url
            && let Err(reason) = super::mcp::check_oauth_url(url)
        {
            problems.push(ConfigError::at("oauth.public_url", reason));
        }
        if let Some(url) = &self.client_metadata_url
            && !url.starts_with("https://")
        {
            problems.push(ConfigError::at(
                "oauth.client_metadata_url",
                "must be an https URL (a client id URL must be)",
            ));
        }
        if let Some(header) = &self.trusted_user_header
            && http::HeaderName::from_bytes(header.as_bytes()).is_err()
        {
            problems.push(ConfigError::at(
                "oauth.trusted_user_header",
                "not a valid HTTP header name",
            ));
        }
    }
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
