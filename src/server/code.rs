//! `POST /v1/code/execute`: run a script for a pipeline; answer with the whole run result.
//!
//! Body `{code, limits?}`; the answer is the machine-readable [`RunResult`]: `ok`, `result`,
//! `stdout`, `stderr`, `error`, one record per tool call, and timings. A script that fails is
//! still a 200 (its failure is in `error`); only a request that cannot run is an error: no
//! code, code over the size limit, limits outside the server's policy (400), a busy sandbox
//! (503).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::AppState;
use super::body::Body;
use super::error::ApiError;
use super::execute::parse;
use crate::executor::{LimitOverrides, RunResult};

/// The request body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    code: String,
    #[serde(default)]
    limits: LimitOverrides,
}

/// The handler.
pub async fn execute(
    State(state): State<Arc<AppState>>,
    Body(body): Body,
) -> Result<Json<RunResult>, ApiError> {
    let request: CodeRequest = parse(&body)?;
    if request.code.trim().is_empty() {
        return Err(ApiError::InvalidRequest("code: must not be empty".into()));
    }
    let result = state
        .codemode
        .execute(&request.code, &request.limits)
        .await?;
    Ok(Json(result))
}
