//! Upstream OAuth, the operator's side: the authorization server's redirect back
//! (`GET /api/oauth/callback`), a new authorization of a client
//! (`POST /api/mcp/client/{name}/reauthorize`), the authorizations codemode holds
//! (`GET`/`DELETE /api/oauth/sessions`), and codemode's Client ID Metadata Document
//! (`GET /oauth/client-metadata.json`).
//!
//! The callback is reached by the operator's (or a caller's) browser, without codemode's admin
//! token: what protects it is the `state`, which must match an authorization codemode started
//! and is used once. Its answer is a short page for a person.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::management::{Success, pending_oauth, success};
use crate::app::App;
use crate::mcp::auth::OPERATOR;

/// What an authorization server appends to the redirect URI.
#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /api/oauth/callback`: finishes the authorization `state` names and connects its client.
pub async fn callback(State(state): State<Arc<App>>, Query(query): Query<Callback>) -> Response {
    let Some(flow_state) = query.state.as_deref() else {
        return page(
            StatusCode::BAD_REQUEST,
            "The request has no state parameter.",
        );
    };
    if let Some(error) = &query.error {
        let abandoned = state.manager.oauth().abandon(flow_state);
        let detail = query.error_description.as_deref().unwrap_or("");
        tracing::warn!(error = %error, client = ?abandoned.map(|a| a.client), "the authorization server refused");
        return page(
            StatusCode::BAD_REQUEST,
            &format!("The authorization server refused: {error} {detail}"),
        );
    }
    let Some(code) = query.code.as_deref() else {
        return page(
            StatusCode::BAD_REQUEST,
            "The request has no code parameter.",
        );
    };
    match state
        .manager
        .authorized(flow_state, code, query.iss.as_deref())
        .await
    {
        Ok(authorized) if authorized.subject == OPERATOR => {
            let statuses = state.manager.status().await;
            let status = statuses.iter().find(|s| s.name == authorized.client);
            let text = match status {
                Some(status) => format!(
                    "{} is authorized; it is now {}.",
                    authorized.client,
                    status.state.as_str()
                ),
                None => format!("{} is authorized.", authorized.client),
            };
            page(StatusCode::OK, &text)
        }
        Ok(authorized) => page(
            StatusCode::OK,
            &format!(
                "{} is authorized for you; your next call will use it.",
                authorized.client
            ),
        ),
        Err(error) => {
            tracing::warn!(%error, "an OAuth callback failed");
            page(StatusCode::BAD_REQUEST, &error.to_string())
        }
    }
}

/// A small page for the person whose browser came back.
fn page(status: StatusCode, text: &str) -> Response {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>codemode</title></head>\
         <body><main><h1>codemode</h1><p id=\"outcome\">{escaped}</p>\
         <p>You can close this tab.</p></main></body></html>"
    );
    (status, Html(html)).into_response()
}

/// `POST /api/mcp/client/{name}/reauthorize`: a new authorization; answers its
/// `authorize_url`.
pub async fn reauthorize(
    State(state): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Success, ApiError> {
    let (status, authorize_url) = state.manager.reauthorize(&name).await?;
    let mut answer = pending_oauth(&status.name, &authorize_url);
    answer["state"] = json!(status.state);
    Ok(answer)
}

/// Which authorization `DELETE /api/oauth/sessions` revokes.
#[derive(Deserialize)]
pub struct SessionKey {
    client: String,
    /// The caller (per-user OAuth); absent for the client's own.
    caller: Option<String>,
}

/// `GET /api/oauth/sessions`: every authorization codemode holds (never a token).
pub async fn sessions(State(state): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let tokens = state.manager.oauth().tokens().tokens().await?;
    let sessions: Vec<Value> = tokens
        .iter()
        .map(|token| {
            json!({
                "client": token.client,
                "caller": (!token.subject.is_empty()).then_some(&token.subject),
                "scopes": token.scopes,
                "expires_at": token.expires_at,
                "updated_at_ms": token.updated_at_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": sessions })))
}

/// `DELETE /api/oauth/sessions?client=&caller=`: revokes one authorization at its server (when
/// the server offers revocation) and forgets it.
pub async fn revoke(
    State(state): State<Arc<App>>,
    Query(key): Query<SessionKey>,
) -> Result<Success, ApiError> {
    let subject = key.caller.as_deref().unwrap_or(OPERATOR);
    state.manager.revoke(&key.client, subject).await?;
    Ok(success("OAuth authorization revoked"))
}

/// `GET /oauth/client-metadata.json`: codemode's Client ID Metadata Document, for
/// authorization servers that identify clients by the URL of their metadata.
pub async fn client_metadata(State(state): State<Arc<App>>) -> Json<Value> {
    let oauth = state.manager.oauth();
    Json(json!({
        "client_id": state.client_metadata_url,
        "client_name": "codemode",
        "redirect_uris": [oauth.redirect_uri()],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "web",
    }))
}
