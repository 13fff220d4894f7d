//! The `providers` section: the LLM providers `/v1/chat/completions` forwards to, in Bifrost's
//! shape.
//!
//! ```json
//! "providers": {
//!   "openai":    { "keys": [ { "name": "main", "value": "env.OPENAI_API_KEY", "models": ["*"], "weight": 1.0 } ],
//!                  "network_config": { "base_url": "https://...", "default_request_timeout_in_seconds": 60,
//!                                      "max_retries": 2, "retry_backoff_initial": 500, "retry_backoff_max": 5000,
//!                                      "extra_headers": {} } },
//!   "anthropic": { "keys": [ { "value": "env.ANTHROPIC_API_KEY", "models": ["claude-*"] } ] },
//!   "local":     { "custom_provider_config": { "base_provider_type": "openai" },
//!                  "network_config": { "base_url": "http://127.0.0.1:11434/v1" }, "keys": [] }
//! }
//! ```
//!
//! A provider speaks one of two wire protocols: OpenAI chat completions or Anthropic Messages.
//! Its name decides which for the providers codemode knows ([`KNOWN`]); any other name needs
//! `custom_provider_config.base_provider_type` and a `base_url`. Bifrost's settings codemode does
//! not implement (concurrency, proxies, raw responses) are accepted and ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ConfigError, check_name, field};

/// Every provider, by name (the `<provider>` of `model: "<provider>/<model>"`).
pub type ProvidersConfig = BTreeMap<String, ProviderConfig>;

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OpenAI chat completions (`POST {base_url}/chat/completions`): OpenAI and every
    /// compatible server.
    OpenAi,
    /// Anthropic Messages (`POST {base_url}/messages`).
    Anthropic,
}

/// The providers codemode knows by name: their protocol and default base URL.
pub const KNOWN: [(&str, Protocol, &str); 8] = [
    ("openai", Protocol::OpenAi, "https://api.openai.com/v1"),
    (
        "anthropic",
        Protocol::Anthropic,
        "https://api.anthropic.com/v1",
    ),
    ("groq", Protocol::OpenAi, "https://api.groq.com/openai/v1"),
    (
        "openrouter",
        Protocol::OpenAi,
        "https://openrouter.ai/api/v1",
    ),
    ("together", Protocol::OpenAi, "https://api.together.xyz/v1"),
    ("mistral", Protocol::OpenAi, "https://api.mistral.ai/v1"),
    ("ollama", Protocol::OpenAi, "http://127.0.0.1:11434/v1"),
    ("lmstudio", Protocol::OpenAi, "http://127.0.0.1:1234/v1"),
];

/// One provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// Its API keys; a request uses one whose `models` match, chosen by weight. A provider
    /// without keys (a local server) is called without one.
    #[serde(default)]
    pub keys: Vec<ProviderKey>,
    /// Where and how it is reached.
    #[serde(default)]
    pub network_config: NetworkConfig,
    /// For a provider codemode does not know by name: the protocol it speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_provider_config: Option<CustomProviderConfig>,
    /// Bifrost settings codemode does not implement.
    #[serde(flatten)]
    pub ignored: BTreeMap<String, Value>,
}

/// One API key of a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderKey {
    /// A name for the operator (never the value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The key, usually `env.NAME`. Never logged, never returned.
    pub value: String,
    /// The models it serves: names, or patterns with `*` (`["*"]`, `["claude-*"]`).
    #[serde(default = "every_model")]
    pub models: Vec<String>,
    /// Its share of the requests among the keys that match.
    #[serde(default = "unit_weight")]
    pub weight: f64,
    /// Bifrost settings codemode does not implement (per-key deployments, ids).
    #[serde(flatten)]
    pub ignored: BTreeMap<String, Value>,
}

fn every_model() -> Vec<String> {
    vec!["*".to_string()]
}

fn unit_weight() -> f64 {
    1.0
}

/// `network_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkConfig {
    /// The API's base URL (ending in `/v1` for both protocols); the known providers have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// How long one attempt may take, to the last byte of a non-streamed answer or the first
    /// byte of a stream.
    pub default_request_timeout_in_seconds: u64,
    /// Attempts after the first on a 429, a 5xx, a connection failure or a timeout.
    pub max_retries: u32,
    /// The first wait before a retry, in milliseconds; it doubles up to `retry_backoff_max`.
    pub retry_backoff_initial: u64,
    /// The longest wait before a retry, in milliseconds.
    pub retry_backoff_max: u64,
    /// Headers added to every request to this provider.
    pub extra_headers: BTreeMap<String, String>,
    /// Bifrost settings codemode does not implement.
    #[serde(flatten)]
    pub ignored: BTreeMap<String, Value>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            base_url: None,
            default_request_timeout_in_seconds: 60,
            max_retries: 0,
            retry_backoff_initial: 500,
            retry_backoff_max: 5_000,
            extra_headers: BTreeMap::new(),
            ignored: BTreeMap::new(),
        }
    }
}

impl NetworkConfig {
    /// How long one attempt may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.default_request_timeout_in_seconds)
    }

    /// The wait before retry number `retry` (0 for the first): doubling from
    /// `retry_backoff_initial`, at most `retry_backoff_max`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1_u64.checked_shl(retry.min(32)).unwrap_or(u64::MAX);
        let ms = self
            .retry_backoff_initial
            .saturating_mul(factor)
            .min(self.retry_backoff_max);
        Duration::from_millis(ms)
    }
}

/// `custom_provider_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomProviderConfig {
    /// The protocol: `openai` or `anthropic`.
    pub base_provider_type: Protocol,
    /// Bifrost settings codemode does not implement (allowed requests, ...).
    #[serde(flatten)]
    pub ignored: BTreeMap<String, Value>,
}

impl ProviderConfig {
    /// The protocol of provider `name`, and its base URL (without a trailing `/`).
    pub fn endpoint(&self, name: &str) -> Result<(Protocol, String), String> {
        let known = KNOWN.iter().find(|(known, _, _)| *known == name);
        let protocol = match (&self.custom_provider_config, known) {
            (Some(custom), _) => custom.base_provider_type,
            (None, Some((_, protocol, _))) => *protocol,
            (None, None) => {
                return Err(format!(
                    "\"{name}\" is not a provider codemode knows; give it \
                     custom_provider_config.base_provider_type (openai or anthropic) and a \
                     network_config.base_url"
                ));
            }
        };
        let base_url = match (&self.network_config.base_url, known) {
            (Some(url), _) => url.clone(),
            (None, Some((_, _, url))) if self.custom_provider_config.is_none() => url.to_string(),
            _ => {
                return Err(format!(
                    "\"{name}\" needs network_config.base_url (where its API is)"
                ));
            }
        };
        Ok((protocol, base_url.trim_end_matches('/').to_string()))
    }

    /// Every problem of provider `name`, located under `path`.
    pub(crate) fn check(&self, name: &str, path: &str, problems: &mut Vec<ConfigError>) {
        if let Err(reason) = check_name(name) {
            problems.push(ConfigError::at(path, format!("provider name {reason}")));
        }
        if let Err(reason) = self.endpoint(name) {
            problems.push(ConfigError::at(path, reason));
        }
        if let Some(url) = &self.network_config.base_url
            && reqwest::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
        {
            problems.push(ConfigError::at(
                field(path, "network_config.base_url"),
                format!("\"{url}\" is not an http(s) URL"),
            ));
        }
        let network = &self.network_config;
        if network.default_request_timeout_in_seconds == 0 {
            problems.push(ConfigError::at(
                field(path, "network_config.default_request_timeout_in_seconds"),
                "must be at least 1",
            ));
        }
        if network.retry_backoff_initial > network.retry_backoff_max {
            problems.push(ConfigError::at(
                field(path, "network_config.retry_backoff_initial"),
                "must not be more than retry_backoff_max",
            ));
        }
        for (index, key) in self.keys.iter().enumerate() {
            let key_path = field(path, &format!("keys[{index}]"));
            if !(key.weight.is_finite() && key.weight > 0.0) {
                problems.push(ConfigError::at(
                    field(&key_path, "weight"),
                    "must be a number above 0",
                ));
            }
            if key.models.is_empty() {
                problems.push(ConfigError::at(
                    field(&key_path, "models"),
                    "must name at least one model (\"*\" for all)",
                ));
            }
            if key.value.is_empty() {
                problems.push(ConfigError::at(
                    field(&key_path, "value"),
                    "must not be empty",
                ));
            }
        }
    }
}

impl ProviderKey {
    /// True when this key serves `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.models
            .iter()
            .any(|pattern| matches_pattern(pattern, model))
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return name.is_empty();
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Every problem of the `providers` section.
pub(crate) fn check(providers: &ProvidersConfig, problems: &mut Vec<ConfigError>) {
    for (name, provider) in providers {
        provider.check(name, &format!("providers.{name}"), problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_with_stars() {
        assert!(matches_pattern("*", "gpt-4o"));
        assert!(matches_pattern("claude-*", "claude-sonnet-4"));
        assert!(!matches_pattern("claude-*", "gpt-4o"));
        assert!(matches_pattern("gpt-4o", "gpt-4o"));
        assert!(!matches_pattern("gpt-4o", "gpt-4o-mini"));
        assert!(matches_pattern("gpt-*-mini", "gpt-4o-mini"));
        assert!(!matches_pattern("a*b*c", "abd"));
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let network = NetworkConfig {
            retry_backoff_initial: 100,
            retry_backoff_max: 350,
            ..NetworkConfig::default()
        };
        let waits: Vec<u128> = (0..4).map(|r| network.backoff(r).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
    }

    #[test]
    fn known_and_custom_providers_have_an_endpoint() {
        let openai = ProviderConfig::default();
        assert_eq!(
            openai.endpoint("openai").ok(),
            Some((Protocol::OpenAi, "https://api.openai.com/v1".to_string()))
        );
        assert!(openai.endpoint("local").is_err());
        let local: ProviderConfig = serde_json::from_value(serde_json::json!({
            "custom_provider_config": {"base_provider_type": "openai"},
            "network_config": {"base_url": "http://127.0.0.1:11434/v1/"}
        }))
        .expect("parses");
        assert_eq!(
            local.endpoint("local").ok(),
            Some((Protocol::OpenAi, "http://127.0.0.1:11434/v1".to_string()))
        );
    }
}
