//! The caller side: the HTTP service.
//!
//! [`router`] is a function of the shared [`App`], so tests call it without a socket;
//! [`serve`] runs it on a listener until a shutdown future resolves. Handlers parse, call the
//! layer that owns the decision (the [`Gateway`](crate::gateway::Gateway) for everything a
//! caller does with tools, the manager and the key ring for management), and translate errors
//! through [`ApiError`]; there is no business logic here.
//!
//! - [`management`]: the client management API, `/api/mcp/*`.
//! - [`governance`]: the virtual keys API, `/api/governance/virtual-keys`.
//! - [`logs`]: the audit log, `GET /api/logs`.
//! - [`providers`]: the LLM providers API, `/api/providers`.
//! - [`execute`]: tool execution, `POST /v1/mcp/tool/execute`, and the tool list,
//!   `GET /v1/mcp/tools`.
//! - [`code`]: `POST /v1/code/execute`, scripts for pipelines; `POST /v1/code/analyze`.
//! - [`chat`]: `POST /v1/chat/completions` (LLM providers with the caller's MCP tools added)
//!   and `GET /v1/models`.
//! - [`mcp`]: codemode as an MCP server, `/mcp` (and the stdio mode's handler).
//! - [`oauth`]: upstream OAuth: the callback, reauthorization, the authorizations held, and
//!   codemode's Client ID Metadata Document.
//! - [`metrics`]: `GET /metrics` (Prometheus), and the count of every request by route.
//! - [`ui`]: the web UI (`/mcp-clients`, `/logs`, `/keys`, `/playground`, the login), and the
//!   admin guard of `/api/*` it shares with scripts.
//! - [`playground`]: `/api/playground/*`, scripts run as a named key for the UI.
//! - [`caller`]: who is calling (virtual key, request filters).
//! - [`body`]: request bodies as text, with API errors for oversized ones.

pub mod body;
pub mod caller;
pub mod chat;
pub mod code;
pub mod error;
pub mod execute;
pub mod governance;
pub mod logs;
pub mod management;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod playground;
pub mod providers;
pub mod ui;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post, put};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

pub use error::ApiError;

use crate::app::App;

/// All routes of the service.
pub fn router(state: Arc<App>) -> Router {
    let api = Router::new()
        .route("/api/mcp/clients", get(management::list))
        .route(
            "/api/mcp/settings",
            get(management::settings).put(management::edit_settings),
        )
        .route("/api/mcp/client", post(management::add))
        .route(
            "/api/mcp/client/{name}",
            put(management::edit).delete(management::remove),
        )
        .route(
            "/api/mcp/client/{name}/reconnect",
            post(management::reconnect),
        )
        .route(
            "/api/mcp/client/{name}/reauthorize",
            post(oauth::reauthorize),
        )
        .route(
            "/api/oauth/sessions",
            get(oauth::sessions).delete(oauth::revoke),
        )
        .route(
            "/api/governance/virtual-keys",
            get(governance::list).post(governance::add),
        )
        .route(
            "/api/governance/virtual-keys/{name}",
            put(governance::edit).delete(governance::remove),
        )
        .route("/api/logs", get(logs::list))
        .route("/metrics", get(metrics::scrape))
        .route("/api/logs/llm", get(logs::list_llm))
        .route("/api/providers", get(providers::list).post(providers::add))
        .route(
            "/api/providers/{name}",
            put(providers::edit).delete(providers::remove),
        )
        .route("/api/playground/stubs", get(playground::stubs))
        .route("/api/playground/execute", post(playground::execute))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            ui::require_admin,
        ));
    let mcp_service = mcp::service(
        Arc::clone(&state),
        &state.mcp_server.allowed_hosts,
        &state.mcp_server.allowed_origins,
    );
    let mcp_route =
        Router::new()
            .nest_service("/mcp", mcp_service)
            .layer(middleware::from_fn_with_state(
                Arc::clone(&state),
                mcp::require_key,
            ));
    Router::new()
        .merge(api)
        .merge(mcp_route)
        .merge(ui::routes(Arc::clone(&state)))
        .route(crate::mcp::auth::CALLBACK_PATH, get(oauth::callback))
        .route(
            crate::mcp::auth::METADATA_DOCUMENT_PATH,
            get(oauth::client_metadata),
        )
        .route("/v1/mcp/tool/execute", post(execute::execute))
        .route("/v1/mcp/tools", get(execute::tools))
        .route("/v1/code/execute", post(code::execute))
        .route("/v1/code/analyze", post(code::analyze))
        .route("/v1/chat/completions", post(chat::complete))
        .route("/v1/models", get(chat::models))
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            metrics::observe_request,
        ))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish. Requests carry whether the listener is a loopback address (the UI needs one when no
/// admin token is set).
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    listener: TcpListener,
    state: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let loopback = listener.local_addr()?.ip().is_loopback();
    let router = router(state).layer(axum::Extension(ui::access::Listener { loopback }));
    // Answers go out at once: with Nagle's algorithm on, the last small write of an answer (an
    // SSE stream's end, say) waits for the client's delayed ACK, about 40 ms, on every request
    // of a kept-alive connection.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
