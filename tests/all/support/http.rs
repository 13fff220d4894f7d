//! The HTTP service through its router (no socket).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use codemode::app::App;
use codemode::config::Config;
use codemode::mcp::McpManager;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::sandbox::EXECUTOR;

/// The service's state over `manager`, running scripts in the shared executor.
pub async fn app_state(manager: Arc<McpManager>) -> App {
    App::assemble(&Config::default(), manager, EXECUTOR.clone(), None)
        .await
        .expect("state")
}

/// A request through the router; answers the status and the JSON body (null when none).
pub async fn call(app: &axum::Router, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    send(app, method, uri, &[], body).await
}

/// [`call`] with `headers`.
pub async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    let response = app
        .clone()
        .oneshot(request.body(body).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// The body of `GET uri` through the router, as text.
pub async fn text(app: &axum::Router, uri: &str) -> String {
    let request = Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    super::llm::body_text(response).await
}
