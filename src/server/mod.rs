//! The caller side: the HTTP service.
//!
//! [`router`] is a function of the shared [`AppState`], so tests call it without a socket;
//! [`serve`] runs it on a listener until a shutdown future resolves. Handlers parse, call the
//! layer that owns the decision (the MCP manager today), and translate errors through
//! [`ApiError`]; there is no business logic here.
//!
//! - [`management`]: `/api/mcp/*`, the client management API.
//! - [`body`]: request bodies as text, with API errors for oversized ones.
//! - [`code`]: `POST /v1/code/execute`, scripts for pipelines.
//! - [`execute`]: tool execution, `POST /v1/mcp/tool/execute`, and the tool list,
//!   `GET /v1/mcp/tools`.

pub mod body;
pub mod code;
pub mod error;
pub mod execute;
pub mod management;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use tokio::net::TcpListener;

pub use error::ApiError;

use crate::codemode::CodeMode;
use crate::config::BindingLevel;
use crate::executor::{Executor, LimitOverrides};
use crate::mcp::McpManager;

/// What every handler shares.
pub struct AppState {
    /// The upstream MCP clients.
    pub manager: Arc<McpManager>,
    /// Code mode over the same clients.
    pub codemode: CodeMode,
}

impl AppState {
    /// The state of a service whose scripts run in `executor`, with `sandbox` as the limits of
    /// runs that ask for none and stubs split by `level`.
    pub fn new(
        manager: Arc<McpManager>,
        executor: Executor,
        sandbox: LimitOverrides,
        level: BindingLevel,
    ) -> Self {
        AppState {
            codemode: CodeMode::new(Arc::clone(&manager), executor, sandbox, level),
            manager,
        }
    }
}

/// All routes of the service.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/mcp/clients", get(management::list))
        .route("/api/mcp/client", post(management::add))
        .route(
            "/api/mcp/client/{name}",
            put(management::edit).delete(management::remove),
        )
        .route(
            "/api/mcp/client/{name}/reconnect",
            post(management::reconnect),
        )
        .route("/v1/mcp/tool/execute", post(execute::execute))
        .route("/v1/mcp/tools", get(execute::tools))
        .route("/v1/code/execute", post(code::execute))
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish.
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
