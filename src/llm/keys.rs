//! Choosing a provider key for a model: among the keys whose `models` match, by weight.
//!
//! Key values are read from the environment (`env.NAME`) when a key is used, kept in a
//! [`SecretKey`] that never prints, and sent only as the provider's auth header.

use reqwest::StatusCode;

use super::{LlmError, Provider};
use crate::config::resolve_env;

/// A provider key's value. `Debug` does not show it.
#[derive(Clone)]
pub struct SecretKey(String);

impl SecretKey {
    /// The value, for the auth header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// The key to call `provider` with for `model`: `None` for a provider without keys (a local
/// server), else one of the keys serving `model`, chosen at random in proportion to weight.
///
/// # Errors
/// [`LlmError`]: 400 when no key serves the model, 503 when every key that does names an unset
/// variable (the operator's mistake, said without the value).
pub fn choose(provider: &Provider, model: &str) -> Result<Option<SecretKey>, LlmError> {
    if provider.keys.is_empty() {
        return Ok(None);
    }
    let serving: Vec<_> = provider.keys.iter().filter(|k| k.serves(model)).collect();
    if serving.is_empty() {
        return Err(LlmError::invalid(format!(
            "no key of provider {} serves model {model}",
            provider.name
        )));
    }
    let mut usable = Vec::new();
    let mut unset = Vec::new();
    for key in serving {
        match resolve_env(&key.value) {
            Ok(value) => usable.push((key.weight, value)),
            Err(missing) => unset.push(missing.to_string()),
        }
    }
    let total: f64 = usable.iter().map(|(weight, _)| weight).sum();
    let mut point = rand::random::<f64>() * total;
    for (weight, value) in &usable {
        if point < *weight {
            return Ok(Some(SecretKey(value.clone())));
        }
        point -= weight;
    }
    match usable.pop() {
        Some((_, value)) => Ok(Some(SecretKey(value))),
        None => Err(LlmError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            format!(
                "provider {}'s keys for {model} cannot be used: {}",
                provider.name,
                unset.join("; ")
            ),
        )),
    }
}
