//! The OpenAI chat-completions wire protocol: `POST {base_url}/chat/completions`.
//!
//! The body goes as the caller wrote it (the gateway's own fields already taken out, `model`
//! set to the provider's name for it). A complete answer is read as JSON; a streamed one is
//! forwarded as it arrives, its bytes untouched.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use super::Provider;
use super::keys::SecretKey;
use super::upstream::{self, AttemptError, Reply, describe};

/// Sends `body` to `provider` once; `stream` says whether the answer is an event stream.
///
/// # Errors
/// [`AttemptError`] for a failed attempt.
pub async fn send(
    http: &reqwest::Client,
    provider: &Provider,
    key: Option<&SecretKey>,
    body: &Value,
    stream: bool,
) -> Result<Reply, AttemptError> {
    let bearer = key.map(|key| format!("Bearer {}", key.expose()));
    let auth: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    let opened = upstream::post(http, provider, "/chat/completions", &auth, key, body).await?;
    if stream {
        let events = opened
            .response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|error| describe(&error)));
        return Ok(Reply::Stream(events.boxed()));
    }
    Ok(Reply::Complete(opened.json(provider).await?))
}

/// The ids of the models `provider` lists at `GET {base_url}/models`.
///
/// # Errors
/// A description of why it could not be asked or read.
pub async fn list_models(
    http: &reqwest::Client,
    provider: &Provider,
    key: Option<&SecretKey>,
) -> Result<Vec<String>, String> {
    let mut request = http.get(format!("{}/models", provider.base_url));
    if let Some(key) = key {
        request = request.bearer_auth(key.expose());
    }
    let timeout = provider.network.timeout().min(Duration::from_secs(10));
    let response = tokio::time::timeout(timeout, request.send())
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|error| describe(&error))?;
    if !response.status().is_success() {
        return Err(format!("it answered {}", response.status()));
    }
    let listing: Value = tokio::time::timeout(timeout, response.json())
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|error| describe(&error))?;
    Ok(listing["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|model| model["id"].as_str().map(str::to_string))
        .collect())
}
