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
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::config::{
    ConfigError, NetworkConfig, Protocol, ProviderConfig, ProviderKey, ProvidersConfig,
};
use crate::store::{ProviderChange, ProviderStore, StoreError};

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

/// The providers: the file's, with the changes made through the API (which are kept in the
/// store, as written, and win at the next start), and the HTTP client they share.
pub struct Providers {
    state: RwLock<Ready>,
    /// Serialises changes across the store's write.
    edits: tokio::sync::Mutex<()>,
    store: Option<Arc<dyn ProviderStore>>,
    /// Built at the first request: building it reads the system's root certificates, a cost
    /// every start of `codemode run` would pay for nothing.
    http: OnceLock<reqwest::Client>,
}

/// Every provider as written and as ready to call, always in agreement.
#[derive(Default)]
struct Ready {
    configs: ProvidersConfig,
    providers: BTreeMap<String, Arc<Provider>>,
}

impl Ready {
    fn insert(&mut self, name: &str, config: ProviderConfig) {
        match config.endpoint(name) {
            Ok((protocol, base_url)) => {
                let provider = Provider {
                    name: name.to_string(),
                    protocol,
                    base_url,
                    network: config.network_config.clone(),
                    keys: config.keys.clone(),
                };
                self.providers.insert(name.to_string(), Arc::new(provider));
            }
            // Validation refuses such a provider; one read from an old store is left out.
            Err(why) => {
                tracing::error!(provider = name, %why, "provider unusable");
                self.providers.remove(name);
            }
        }
        self.configs.insert(name.to_string(), config);
    }

    fn remove(&mut self, name: &str) {
        self.configs.remove(name);
        self.providers.remove(name);
    }
}

/// A change to the providers that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No provider has this name.
    #[error("there is no provider named {0}")]
    NotFound(String),
    /// The name is taken.
    #[error("a provider named {0} exists already")]
    Duplicate(String),
    /// The configuration cannot be used.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The store failed (the change was not made).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Providers {
    /// The providers of a validated `providers` section, changes through the API kept nowhere.
    pub fn new(config: &ProvidersConfig) -> Providers {
        let mut ready = Ready::default();
        for (name, provider) in config {
            ready.insert(name, provider.clone());
        }
        Providers {
            state: RwLock::new(ready),
            edits: tokio::sync::Mutex::new(()),
            store: None,
            http: OnceLock::new(),
        }
    }

    /// The file's providers with the store's recorded changes applied (they win); later
    /// changes are recorded in `store`.
    ///
    /// # Errors
    /// [`StoreError`] when the recorded changes cannot be read.
    pub async fn load(
        config: &ProvidersConfig,
        store: Option<Arc<dyn ProviderStore>>,
    ) -> Result<Providers, StoreError> {
        let mut providers = Providers::new(config);
        if let Some(store) = &store {
            let changes = store.provider_changes().await?;
            let mut ready = providers.write();
            for change in changes {
                match change {
                    ProviderChange::Saved(name, config) => ready.insert(&name, *config),
                    ProviderChange::Removed(name) => ready.remove(&name),
                }
            }
        }
        providers.store = store;
        Ok(providers)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ready> {
        // Every write leaves `Ready` consistent before it can panic.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Ready> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Provider `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Provider>> {
        self.read().providers.get(name).cloned()
    }

    /// Every provider, by name.
    pub fn all(&self) -> Vec<Arc<Provider>> {
        self.read().providers.values().cloned().collect()
    }

    /// Every provider's configuration as written, key values that are not `env.NAME`
    /// references replaced by `<redacted>`.
    pub fn list(&self) -> Vec<Value> {
        self.read()
            .configs
            .iter()
            .map(|(name, config)| {
                let mut config = config.clone();
                for key in &mut config.keys {
                    if !key.value.starts_with("env.") {
                        key.value = "<redacted>".into();
                    }
                }
                let mut listed = json!({"name": name});
                if let (Some(listed), Ok(Value::Object(fields))) =
                    (listed.as_object_mut(), serde_json::to_value(config))
                {
                    listed.extend(fields);
                }
                listed
            })
            .collect()
    }

    /// Adds provider `name` (`create`) or replaces it: validated, recorded in the store, then
    /// used. Through the API a key's value must be an `env.NAME` reference, so no provider
    /// secret is ever stored.
    ///
    /// # Errors
    /// [`ProviderError`]: an invalid configuration, a name taken (or missing, to replace), a
    /// store failure.
    pub async fn save(
        &self,
        name: &str,
        config: ProviderConfig,
        create: bool,
    ) -> Result<(), ProviderError> {
        crate::config::first_problem(|problems| {
            config.check(name, "provider", problems);
            for (index, key) in config.keys.iter().enumerate() {
                if !key.value.starts_with("env.") {
                    problems.push(ConfigError::at(
                        format!("keys[{index}].value"),
                        "must be an env.NAME reference: codemode does not store provider secrets",
                    ));
                }
            }
        })?;
        let _edit = self.edits.lock().await;
        let exists = self.read().configs.contains_key(name);
        if create && exists {
            return Err(ProviderError::Duplicate(name.to_string()));
        }
        if !create && !exists {
            return Err(ProviderError::NotFound(name.to_string()));
        }
        if let Some(store) = &self.store {
            store.save_provider(name, &config).await?;
        }
        self.write().insert(name, config);
        Ok(())
    }

    /// Removes provider `name`: recorded in the store, then gone.
    ///
    /// # Errors
    /// [`ProviderError::NotFound`], or a store failure.
    pub async fn remove(&self, name: &str) -> Result<(), ProviderError> {
        let _edit = self.edits.lock().await;
        if !self.read().configs.contains_key(name) {
            return Err(ProviderError::NotFound(name.to_string()));
        }
        if let Some(store) = &self.store {
            store.forget_provider(name).await?;
        }
        self.write().remove(name);
        Ok(())
    }

    /// The HTTP client of every provider request. Timeouts are per attempt (see `route`); the
    /// pool keeps connections to providers warm.
    pub(crate) fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(90))
                .build()
                .unwrap_or_default()
        })
    }

    /// Every model the providers serve, as `<provider>/<model>`: what each OpenAI-protocol
    /// provider lists, asked in parallel; for a provider that cannot be asked, the models its
    /// keys name (patterns with `*` name none).
    pub async fn models(&self) -> Vec<(String, String)> {
        let providers = self.all();
        let listings = providers.iter().map(|provider| async move {
            // Any key will do for a listing: one for the first model the first key names.
            let key = provider
                .keys
                .first()
                .and_then(|k| keys::choose(provider, k.models.first()?).ok().flatten());
            let listed = match provider.protocol {
                Protocol::OpenAi => openai::list_models(self.http(), provider, key.as_ref())
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
