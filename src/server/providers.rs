//! `/api/providers`: list, add, edit and delete LLM providers. Changes are kept in the store
//! (as written) and win over the file at the next start, like clients. A key's value given
//! through the API must be an `env.NAME` reference; a listing shows references and nothing
//! else (a literal value from the file shows as `<redacted>`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Body;
use super::error::ApiError;
use super::execute::parse;
use super::management::{Success, success};
use crate::app::App;
use crate::config::ProviderConfig;
use crate::llm::ProviderError;

/// A provider in a request body: its name (required to add, optional to edit) and its
/// configuration in the file's shape.
#[derive(Deserialize)]
struct ProviderBody {
    name: Option<String>,
    #[serde(flatten)]
    config: ProviderConfig,
}

/// `GET /api/providers`.
pub async fn list(State(state): State<Arc<App>>) -> Json<Value> {
    Json(json!({ "providers": state.providers.list() }))
}

/// `POST /api/providers`: the body is `{"name", ...the provider's configuration}`.
pub async fn add(State(state): State<Arc<App>>, Body(body): Body) -> Result<Success, ApiError> {
    let body: ProviderBody = parse(&body)?;
    let Some(name) = body.name else {
        return Err(ApiError::InvalidRequest("name: required".into()));
    };
    state.providers.save(&name, body.config, true).await?;
    Ok(success("provider created successfully"))
}

/// `PUT /api/providers/{name}`: the body replaces the provider's configuration.
pub async fn edit(
    State(state): State<Arc<App>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<Success, ApiError> {
    let body: ProviderBody = parse(&body)?;
    if body.name.as_ref().is_some_and(|named| *named != name) {
        return Err(ApiError::InvalidRequest(format!(
            "name: the body names another provider than {name} (rename by deleting and adding)"
        )));
    }
    state.providers.save(&name, body.config, false).await?;
    Ok(success("provider updated successfully"))
}

/// `DELETE /api/providers/{name}`.
pub async fn remove(
    State(state): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Success, ApiError> {
    state.providers.remove(&name).await?;
    Ok(success("provider deleted successfully"))
}

impl From<ProviderError> for ApiError {
    fn from(error: ProviderError) -> Self {
        let message = error.to_string();
        match error {
            ProviderError::NotFound(_) => ApiError::NotFound(message),
            ProviderError::Duplicate(_) => ApiError::Conflict(message),
            ProviderError::Invalid(_) => ApiError::InvalidRequest(message),
            ProviderError::Store(source) => ApiError::Internal(Box::new(source)),
        }
    }
}
