//! `POST /v1/code/execute`: run a script for a pipeline; answer with the whole run result.
//! `POST /v1/code/analyze`: which tools a script can call, without running it.
//!
//! Body `{code, limits?}` (and the request filters); the answer is the machine-readable run
//! result: `execution_id` (the parent id of its calls in the audit log), `ok`, `result`,
//! `stdout`, `stderr`, `error`, one record per tool call, and timings. A script that fails is
//! still a 200 (its failure is in `error`); only a request that cannot run is an error: no
//! code, code over the size limit, limits outside the server's policy (400), a busy sandbox
//! (503).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::body::Body;
use super::caller::{BodyFilters, Caller};
use super::error::ApiError;
use super::execute::parse;
use crate::app::App;
use crate::code_mode::CodeRun;
use crate::code_mode::analysis::ScriptAnalysis;
use crate::executor::LimitOverrides;
use crate::policy::Permit;

/// The request body.
#[derive(Deserialize)]
struct CodeRequest {
    code: String,
    #[serde(default)]
    limits: LimitOverrides,
    #[serde(flatten)]
    filters: BodyFilters,
}

/// The handler.
pub async fn execute(
    State(state): State<Arc<App>>,
    Caller(permit): Caller,
    Body(body): Body,
) -> Result<Json<CodeRun>, ApiError> {
    let request: CodeRequest = parse(&body)?;
    let permit = request.filters.narrow(permit);
    run(&state, &permit, &request.code, &request.limits).await
}

/// Runs `code` for `permit`: the path `/v1/code/execute` and the UI's playground share.
pub(super) async fn run(
    state: &App,
    permit: &Permit,
    code: &str,
    limits: &LimitOverrides,
) -> Result<Json<CodeRun>, ApiError> {
    if code.trim().is_empty() {
        return Err(ApiError::InvalidRequest("code: must not be empty".into()));
    }
    Ok(Json(state.gateway.run_code(permit, code, limits).await?))
}

/// The body of `POST /v1/code/analyze`.
#[derive(Deserialize)]
struct AnalyzeRequest {
    code: String,
    #[serde(flatten)]
    filters: BodyFilters,
}

/// `POST /v1/code/analyze` `{code}`: the tools the script can call with the caller's servers
/// bound (`tools`), or why that cannot be known (`unknown`, with the line); nothing runs. What an
/// app shows a user before it approves a pending `executeToolCode`.
pub async fn analyze(
    State(state): State<Arc<App>>,
    Caller(permit): Caller,
    Body(body): Body,
) -> Result<Json<ScriptAnalysis>, ApiError> {
    let request: AnalyzeRequest = parse(&body)?;
    let permit = request.filters.narrow(permit);
    let analysis = state.gateway.analyze(&permit, &request.code).await?;
    Ok(Json(analysis))
}
