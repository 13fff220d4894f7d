//! The `governance` section: virtual keys (who may call which tools) and the admin token.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ConfigError, check_name, field, first_problem, parse_json};

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
    /// codemode extension: whether callers of `/v1` and `/mcp` must present a virtual key.
    /// Absent: required as soon as keys or an admin token are configured (in the file or,
    /// once, through the API), else open, and then served on loopback only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthMode>,
    /// Bifrost settings codemode does not implement.
    #[serde(flatten)]
    pub ignored: BTreeMap<String, Value>,
}

/// `governance.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every caller presents a valid, active key.
    Required,
    /// A caller without a key (or with one that matches none) may use what the clients'
    /// configurations allow; a caller with a key gets that key's permit.
    Open,
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
    /// The LLM providers and models it may use in chat requests; none listed: every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_configs: Vec<VirtualKeyProvider>,
}

fn enabled() -> bool {
    true
}

/// One LLM provider a virtual key may use (`provider_configs[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualKeyProvider {
    /// The provider.
    pub provider: String,
    /// Its models the key may use: names or `*` patterns; none listed: every one.
    #[serde(default)]
    pub allowed_models: Vec<String>,
    /// Bifrost's share of traffic among the key's providers; kept, not used (a request names
    /// its provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Bifrost settings codemode does not implement (budgets, rate limits, key ids).
    #[serde(flatten)]
    pub ignored: BTreeMap<String, Value>,
}

impl VirtualKeyProvider {
    /// True when this entry lets the key use `provider`'s `model`.
    pub fn allows(&self, provider: &str, model: &str) -> bool {
        self.provider == provider
            && (self.allowed_models.is_empty()
                || self
                    .allowed_models
                    .iter()
                    .any(|pattern| super::providers::matches_pattern(pattern, model)))
    }
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
        first_problem(|problems| key.check("", problems))?;
        Ok(key)
    }

    /// Adds to `problems` what is wrong with this key: its name, a missing value; `path`
    /// prefixes the error paths.
    pub fn check(&self, path: &str, problems: &mut Vec<ConfigError>) {
        if let Err(reason) = check_name(&self.name) {
            problems.push(ConfigError::at(field(path, "name"), reason));
        }
        if self.value.trim().is_empty() {
            problems.push(ConfigError::at(field(path, "value"), "must not be empty"));
        }
    }
}

impl GovernanceConfig {
    /// Adds every problem of the section to `problems`: each key's, and duplicate names.
    pub fn check(&self, problems: &mut Vec<ConfigError>) {
        let mut names = HashSet::new();
        for (index, key) in self.virtual_keys.iter().enumerate() {
            let path = format!("governance.virtual_keys[{index}]");
            key.check(&path, problems);
            if !names.insert(key.name.as_str()) {
                problems.push(ConfigError::at(
                    format!("{path}.name"),
                    format!("duplicate virtual key name \"{}\"", key.name),
                ));
            }
        }
    }
}
