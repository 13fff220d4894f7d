//! `/api/governance/virtual-keys`: list, create, update and delete virtual keys. Values are
//! never echoed: a listing shows `<redacted>`, and only a hash is stored.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::body::Body;
use super::error::ApiError;
use super::management::{Success, success};
use crate::app::App;
use crate::config::VirtualKeyConfig;

/// `GET /api/governance/virtual-keys`.
pub async fn list(State(state): State<Arc<App>>) -> Json<Value> {
    Json(json!({ "virtual_keys": state.keys.list() }))
}

/// `POST /api/governance/virtual-keys`: the body is one virtual key.
pub async fn add(State(state): State<Arc<App>>, Body(body): Body) -> Result<Success, ApiError> {
    let config = VirtualKeyConfig::parse(&body)?;
    state.keys.add(config).await?;
    Ok(success("virtual key created successfully"))
}

/// `PUT /api/governance/virtual-keys/{name}`: the body replaces the key.
pub async fn edit(
    State(state): State<Arc<App>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<Success, ApiError> {
    let config = VirtualKeyConfig::parse(&body)?;
    state.keys.replace(&name, config).await?;
    Ok(success("virtual key updated successfully"))
}

/// `DELETE /api/governance/virtual-keys/{name}`.
pub async fn remove(
    State(state): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Success, ApiError> {
    state.keys.remove(&name).await?;
    // A key made later under this name must not inherit this one's upstream accounts.
    state.manager.oauth().forget_caller(&name).await?;
    Ok(success("virtual key deleted successfully"))
}
