//! Sections about codemode's own service: `audit` (retention of the audit log) and
//! `mcp_server` (who may reach `/mcp`). Both are codemode extensions.

use serde::{Deserialize, Serialize};

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
