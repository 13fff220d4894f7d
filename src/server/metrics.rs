//! `GET /metrics`: the Prometheus text format (behind the admin token when one is set), and the
//! middleware that counts every HTTP request by the route that served it and its status.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::App;

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub async fn scrape(State(state): State<Arc<App>>) -> Response {
    let text = state.gateway.render_metrics().await;
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response()
}

/// Counts the request under its route's pattern (`/api/mcp/client/{name}`, never the path a
/// caller typed; `unmatched` when no route took it) and the status it got.
pub async fn count_request(
    State(state): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    state.gateway.metrics().http_request(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
