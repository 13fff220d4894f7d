//! `/api/mcp/*`: list, add, edit, remove and reconnect MCP clients at run time, and the tool
//! manager settings the API may change (`max_agent_depth`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::body::Body;
use super::error::ApiError;
use crate::app::App;
use crate::config::ClientConfig;
use crate::mcp::{ClientState, ClientStatus};

/// `{"status": "success", "message": ...}`.
pub(super) type Success = Json<Value>;

/// A success body with `message`.
pub(super) fn success(message: &str) -> Success {
    Json(json!({"status": "success", "message": message}))
}

/// `GET /api/mcp/clients`.
pub async fn list(State(state): State<Arc<App>>) -> Json<Vec<ClientStatus>> {
    Json(state.manager.status().await)
}

/// `POST /api/mcp/client`: the body is one client object.
pub async fn add(State(state): State<Arc<App>>, Body(body): Body) -> Result<Success, ApiError> {
    let config = ClientConfig::parse(&body)?;
    let status = state.manager.add(config).await?;
    connected(&status, "MCP client added successfully")
}

/// `PUT /api/mcp/client/{name}`: a whole client object replaces the configuration (and
/// reconnects); an object of tool settings only edits those.
pub async fn edit(
    State(state): State<Arc<App>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<Success, ApiError> {
    let patch: Value = serde_json::from_str(&body)
        .map_err(|e| ApiError::InvalidRequest(format!("malformed JSON: {e}")))?;
    let Value::Object(patch) = patch else {
        return Err(ApiError::InvalidRequest(
            "the body must be a JSON object".into(),
        ));
    };
    let mut merged = serde_json::to_value(state.manager.config(&name).await?)
        .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let full = patch.contains_key("connection_type");
    if full {
        merged = Value::Object(patch);
    } else if let Value::Object(current) = &mut merged {
        current.extend(patch);
    }
    if merged
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n != name)
    {
        return Err(ApiError::InvalidRequest(format!(
            "name: the body names another client than {name}"
        )));
    }
    if let Value::Object(object) = &mut merged {
        object.insert("name".into(), Value::String(name.clone()));
    }
    let mut config = ClientConfig::parse(&merged.to_string())?;
    config.restore_redacted(&state.manager.config(&name).await?);
    let status = state.manager.replace(&name, config).await?;
    if full {
        connected(&status, "MCP client updated successfully")
    } else {
        Ok(success("MCP client tools edited successfully"))
    }
}

/// The tool manager settings the API reads and changes.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsEdit {
    max_agent_depth: Option<u32>,
}

/// `GET /api/mcp/settings`: `{"max_agent_depth": n}`.
pub async fn settings(State(state): State<Arc<App>>) -> Json<Value> {
    Json(json!({"max_agent_depth": state.manager.max_agent_depth()}))
}

/// `PUT /api/mcp/settings` `{"max_agent_depth": n}` (1–50): applies to the next chat request
/// and is persisted; answers the settings as they now are.
pub async fn edit_settings(
    State(state): State<Arc<App>>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let edit: SettingsEdit = super::execute::parse(&body)?;
    if let Some(depth) = edit.max_agent_depth {
        state.manager.set_max_agent_depth(depth).await?;
    }
    Ok(settings(State(state)).await)
}

/// `DELETE /api/mcp/client/{name}`.
pub async fn remove(
    State(state): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Success, ApiError> {
    state.manager.remove(&name).await?;
    Ok(success("MCP client removed successfully"))
}

/// `POST /api/mcp/client/{name}/reconnect`.
pub async fn reconnect(
    State(state): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Success, ApiError> {
    let status = state.manager.reconnect(&name).await?;
    connected(&status, "MCP client reconnected successfully")
}

/// Bifrost's answer for a client that waits for its operator's OAuth authorization.
pub(super) fn pending_oauth(client: &str, authorize_url: &str) -> Success {
    Json(json!({
        "status": "pending_oauth",
        "message": format!("{client} waits for OAuth authorization: open authorize_url in a browser"),
        "authorize_url": authorize_url,
        "mcp_client_name": client,
    }))
}

/// Success when the client connected; `pending_oauth` with its `authorize_url` when it waits
/// for the operator's OAuth authorization (Bifrost's answer); 502 with its error otherwise (it
/// stays configured).
pub(super) fn connected(status: &ClientStatus, message: &str) -> Result<Success, ApiError> {
    match (status.state, &status.authorize_url) {
        (ClientState::Connected, _) => Ok(success(message)),
        (ClientState::PendingAuthorization | ClientState::NeedsReauth, Some(url)) => {
            Ok(pending_oauth(&status.name, url))
        }
        _ => Err(ApiError::Upstream(format!(
            "{} is configured but could not connect: {}",
            status.name,
            status.last_error.as_deref().unwrap_or("unknown error")
        ))),
    }
}
