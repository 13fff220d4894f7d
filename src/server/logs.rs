//! `GET /api/logs`: the audit log of tool executions, newest first, filtered by `vk`, `client`,
//! `tool`, `outcome`, `parent_execution_id`, `since` and `until` (milliseconds since the epoch),
//! paged by `limit` and `offset`. `GET /api/logs/llm`: the LLM requests, filtered by `vk`,
//! `provider`, `since` and `until`, paged likewise.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::error::ApiError;
use crate::app::App;
use crate::store::{LlmQuery, LogQuery, Store};

/// The handler.
pub async fn list(
    State(state): State<Arc<App>>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let store = flushed_store(&state).await?;
    let (logs, total) = store.audit.query_audit(query.clone()).await?;
    Ok(Json(json!({
        "logs": logs,
        "total": total,
        "limit": query.limit.unwrap_or(100).min(1_000),
        "offset": query.offset.unwrap_or(0),
    })))
}

/// `GET /api/logs/llm`.
pub async fn list_llm(
    State(state): State<Arc<App>>,
    query: Result<Query<LlmQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let store = flushed_store(&state).await?;
    let (logs, total) = store.audit.query_llm(query.clone()).await?;
    Ok(Json(json!({
        "logs": logs,
        "total": total,
        "limit": query.limit.unwrap_or(100).min(1_000),
        "offset": query.offset.unwrap_or(0),
    })))
}

/// The store, once everything queued for it is written.
async fn flushed_store(state: &App) -> Result<&Store, ApiError> {
    let Some(store) = &state.store else {
        return Err(ApiError::NotFound(
            "the audit log needs a database (codemode serve keeps one)".into(),
        ));
    };
    state.flush_audit().await;
    Ok(store)
}
