//! LLM providers behind `POST /v1/chat/completions`: which provider a request goes to, with
//! which key, and what came back.
//!
//! - [`Providers`]: the configured providers (`providers` section) and the one HTTP client they
//!   share.
//! - [`route`]: a request's targets (`model`, then `fallbacks`), retries with backoff inside a
//!   provider, fallbacks across providers, and what the answer says about how it was served.
//! - [`openai`]: the OpenAI chat-completions wire protocol (OpenAI and every compatible server).
//! - [`anthropic`]: the Anthropic Messages protocol, translated to and from OpenAI's shapes.
//! - [`upstream`]: one HTTP attempt, whatever the protocol: timeouts, error answers.
//! - [`keys`]: choosing a provider key by model and weight.
//!
//! The chat endpoint (`server/chat.rs`) owns the request's gateway fields (`model`,
//! `fallbacks`, the MCP filters) and the tools it injects; everything else in the body reaches
//! an OpenAI-protocol provider untouched.

pub mod anthropic;
pub mod keys;
pub mod openai;
pub mod route;
pub mod upstream;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::config::{NetworkConfig, Protocol, ProviderKey, ProvidersConfig};

pub use route::{Answer, ChatRequest, Served};

/// One provider, ready to call.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its name: the `<provider>` of `<provider>/<model>`.
    pub name: String,
    /// The wire protocol it speaks.
    pub protocol: Protocol,
    /// Its API's base URL, without a trailing `/`.
    pub base_url: String,
    /// Timeouts, retries, extra headers.
    pub network: NetworkConfig,
    /// Its keys (values unresolved: `env.NAME` is read when a key is used).
    pub keys: Vec<ProviderKey>,
}

/// The configured providers and the HTTP client they share.
pub struct Providers {
    providers: BTreeMap<String, Provider>,
    http: reqwest::Client,
}

impl Providers {
    /// The providers of a validated `providers` section (a provider whose endpoint cannot be
    /// known was refused by validation and is skipped here).
    pub fn new(config: &ProvidersConfig) -> Providers {
        let providers = config
            .iter()
            .filter_map(|(name, provider)| {
                let (protocol, base_url) = provider.endpoint(name).ok()?;
                Some((
                    name.clone(),
                    Provider {
                        name: name.clone(),
                        protocol,
                        base_url,
                        network: provider.network_config.clone(),
                        keys: provider.keys.clone(),
                    },
                ))
            })
            .collect();
        // Timeouts are per attempt (see `route`); the pool keeps connections to providers warm.
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .unwrap_or_default();
        Providers { providers, http }
    }

    /// Provider `name`.
    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name)
    }

    /// Every provider, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values()
    }

    /// True when none is configured.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Every model the providers serve, as `<provider>/<model>`: what each OpenAI-protocol
    /// provider lists, asked in parallel; for a provider that cannot be asked, the models its
    /// keys name (patterns with `*` name none).
    pub async fn models(&self) -> Vec<(String, String)> {
        let listings = self.providers.values().map(|provider| async move {
            // Any key will do for a listing: one for the first model the first key names.
            let key = provider
                .keys
                .first()
                .and_then(|k| keys::choose(provider, k.models.first()?).ok().flatten());
            let listed = match provider.protocol {
                Protocol::OpenAi => openai::list_models(&self.http, provider, key.as_ref())
                    .await
                    .ok(),
                Protocol::Anthropic => None,
            };
            let models = listed.unwrap_or_else(|| {
                let mut named: Vec<String> = provider
                    .keys
                    .iter()
                    .flat_map(|k| k.models.iter())
                    .filter(|m| !m.contains('*'))
                    .cloned()
                    .collect();
                named.sort();
                named.dedup();
                named
            });
            models
                .into_iter()
                .map(|model| (provider.name.clone(), format!("{}/{model}", provider.name)))
                .collect::<Vec<_>>()
        });
        futures::future::join_all(listings)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Why a chat request failed, in the words its caller gets: an HTTP status, OpenAI's error
/// `type`, a message, and the provider's own error `code` when it gave one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct LlmError {
    /// The status answered: the provider's own for its 4xx/5xx.
    pub status: StatusCode,
    /// OpenAI's error `type` (`invalid_request_error`, `authentication_error`, ...).
    pub kind: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The provider's error `code`, when it gave one (boxed: errors travel by value).
    pub code: Option<Box<Value>>,
}

impl LlmError {
    /// A request problem found before any provider was called.
    pub fn invalid(message: impl Into<String>) -> LlmError {
        LlmError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// An error with `status`, `kind` and `message`.
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> LlmError {
        LlmError {
            status,
            kind: kind.to_string(),
            message: message.into(),
            code: None,
        }
    }

    /// OpenAI's error body: `{"error": {"type", "message", "code"?}}`.
    pub fn body(&self) -> Value {
        let mut error = json!({"type": self.kind, "message": self.message});
        if let Some(code) = &self.code {
            error["code"] = (**code).clone();
        }
        json!({ "error": error })
    }
}

/// `<provider>/<model>`: a provider and one of its models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The provider's name.
    pub provider: String,
    /// The model, as the provider names it (it may itself hold `/`).
    pub model: String,
}

impl ModelRef {
    /// Reads `<provider>/<model>`.
    ///
    /// # Errors
    /// [`LlmError`] (400) naming `what` when the text has no provider or no model.
    pub fn parse(text: &str, what: &str) -> Result<ModelRef, LlmError> {
        match text.split_once('/') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => Ok(ModelRef {
                provider: provider.to_string(),
                model: model.to_string(),
            }),
            _ => Err(LlmError::invalid(format!(
                "{what}: \"{text}\" is not <provider>/<model> (for example openai/gpt-4o-mini)"
            ))),
        }
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}
