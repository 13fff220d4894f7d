//! `GET /metrics`: the Prometheus text format (behind the admin token when one is set), and the
//! middleware that observes every HTTP request: counted by the route that served it and its
//! status, and traced in an `http_request` span (the caller's `traceparent` its parent).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use tracing::Instrument;

use crate::app::App;
use crate::observe::telemetry;

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub async fn scrape(State(state): State<Arc<App>>) -> Response {
    let text = state.gateway.render_metrics().await;
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response()
}

/// Counts the request under its route's pattern (`/api/mcp/client/{name}`, never the path a
/// caller typed; `unmatched` when no route took it) and the status it got, in a span of its own.
pub async fn observe_request(
    State(state): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let span = tracing::info_span!(
        "http_request",
        otel.name = %format!("{} {route}", request.method()),
        http.route = %route,
        http.request.method = %request.method(),
        http.response.status_code = tracing::field::Empty,
    );
    telemetry::adopt_caller_trace(&span, request.headers());
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", u64::from(status));
    state
        .gateway
        .metrics()
        .http_request(&route, status, started.elapsed().as_secs_f64());
    response
}
