//! `/api/playground/*`: the web UI's playground runs a script as one of the virtual keys.
//!
//! An admin does not hold the keys' values (only their hashes are kept), so the playground
//! names a key instead, behind the admin guard: `GET /api/playground/stubs?key=` lists the stub
//! files a script of that key can use, `POST /api/playground/execute` `{key?, code, limits?}`
//! runs one on the same path as `POST /v1/code/execute` (the key's permit, the audit log under
//! its name) and answers the same run result. Without a key the run gets what a caller without
//! one gets, which is nothing when keys are required.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Body;
use super::error::ApiError;
use super::execute::parse;
use crate::app::App;
use crate::code_mode::CodeRun;
use crate::executor::LimitOverrides;
use crate::policy::{AuthError, Permit};

/// Which key the playground acts as.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyChoice {
    key: Option<String>,
}

/// `GET /api/playground/stubs?key=`: `{key, files: [{path, text}]}`.
pub async fn stubs(
    State(state): State<Arc<App>>,
    query: Result<Query<KeyChoice>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(choice) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let permit = permit(&state, choice.key.as_deref())?;
    let files: Vec<Value> = state
        .gateway
        .code_mode()
        .script_files(&permit)
        .await
        .into_iter()
        .map(|file| json!({"path": file.path, "text": file.text}))
        .collect();
    Ok(Json(json!({"key": choice.key, "files": files})))
}

/// The body of `POST /api/playground/execute`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaygroundRun {
    key: Option<String>,
    code: String,
    #[serde(default)]
    limits: LimitOverrides,
}

/// `POST /api/playground/execute`.
pub async fn execute(
    State(state): State<Arc<App>>,
    Body(body): Body,
) -> Result<Json<CodeRun>, ApiError> {
    let request: PlaygroundRun = parse(&body)?;
    let permit = permit(&state, request.key.as_deref())?;
    super::code::run(&state, &permit, &request.code, &request.limits).await
}

/// The permit of the key named `key`, or of a caller with none.
fn permit(state: &App, key: Option<&str>) -> Result<Permit, ApiError> {
    let permit = match key.filter(|k| !k.is_empty()) {
        Some(name) => state.keys.permit_of(name),
        None => state.keys.authenticate(None),
    };
    permit.map_err(|error| {
        ApiError::InvalidRequest(match error {
            AuthError::Missing => "key: virtual keys are required here; pick one to run as".into(),
            AuthError::Disabled(name) => format!("key: the virtual key {name} is disabled"),
            _ => format!(
                "key: no usable virtual key named {}",
                key.unwrap_or_default()
            ),
        })
    })
}
