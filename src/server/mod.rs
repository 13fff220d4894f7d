//! The caller side: the HTTP service.
//!
//! [`router`] is a function of the shared [`AppState`], so tests call it without a socket;
//! [`serve`] runs it on a listener until a shutdown future resolves. Handlers parse, call the
//! layer that owns the decision (the manager, code mode, policy), and translate errors through
//! [`ApiError`]; there is no business logic here.
//!
//! - [`management`]: the client management API, `/api/mcp/*`.
//! - [`governance`]: the virtual keys API, `/api/governance/virtual-keys`.
//! - [`logs`]: the audit log, `GET /api/logs`.
//! - [`execute`]: tool execution, `POST /v1/mcp/tool/execute`, and the tool list,
//!   `GET /v1/mcp/tools`.
//! - [`code`]: `POST /v1/code/execute`, scripts for pipelines.
//! - [`mcp`]: codemode as an MCP server, `/mcp` (and the stdio mode's handler).
//! - [`caller`]: who is calling (virtual key, request filters) and the admin guard of `/api`.
//! - [`body`]: request bodies as text, with API errors for oversized ones.

pub mod body;
pub mod caller;
pub mod code;
pub mod error;
pub mod execute;
pub mod governance;
pub mod logs;
pub mod management;
pub mod mcp;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post, put};
use tokio::net::TcpListener;

pub use error::ApiError;

use crate::audit::AuditLog;
use crate::codemode::CodeMode;
use crate::config::{Config, McpServerConfig, MissingVariable, resolve_env};
use crate::executor::Executor;
use crate::mcp::McpManager;
use crate::policy::KeyRing;
use crate::policy::keys::{KeyHash, hash_key};
use crate::store::{Store, StoreError};

/// What every handler shares.
pub struct AppState {
    /// The upstream MCP clients.
    pub manager: Arc<McpManager>,
    /// Code mode over the same clients.
    pub codemode: CodeMode,
    /// The virtual keys.
    pub keys: KeyRing,
    /// Where tool executions are recorded, when there is a store.
    pub audit: Option<Arc<AuditLog>>,
    /// The store, for the audit log's queries.
    pub store: Option<Arc<Store>>,
    /// The hash of the admin token that guards `/api/*`, when one is configured.
    admin_token: Option<KeyHash>,
    /// Who may reach `/mcp` by name.
    mcp_server: McpServerConfig,
}

/// Why the service's state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The admin token names an unset variable.
    #[error("governance.admin_token: {0}")]
    AdminToken(#[from] MissingVariable),
}

impl AppState {
    /// The state of a service over `manager` whose scripts run in `executor`, configured by
    /// `config` (sandbox limits, binding level, virtual keys, admin token, audit retention).
    /// With a `store`, keys changed through the API persist and tool executions are audited;
    /// the audit writer needs a Tokio runtime.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read or the admin token's variable is unset.
    pub fn new(
        manager: Arc<McpManager>,
        executor: Executor,
        config: &Config,
        store: Option<Arc<Store>>,
    ) -> Result<Self, StateError> {
        let audit = store
            .as_ref()
            .map(|store| Arc::new(AuditLog::start(Arc::clone(store), config.audit)));
        let keys = KeyRing::load(&config.governance.virtual_keys, store.clone())?;
        let admin_token = match &config.governance.admin_token {
            Some(token) => Some(hash_key(&resolve_env(token)?)),
            None => None,
        };
        Ok(AppState {
            codemode: CodeMode::new(
                Arc::clone(&manager),
                executor,
                config.sandbox,
                config.mcp.tool_manager_config.code_mode_binding_level,
                audit.clone(),
            ),
            manager,
            keys,
            audit,
            store,
            admin_token,
            mcp_server: config.mcp_server.clone(),
        })
    }

    /// Waits until every audit record queued so far is written.
    pub async fn flush_audit(&self) {
        if let Some(audit) = &self.audit {
            audit.flush().await;
        }
    }
}

/// All routes of the service.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
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
        .route(
            "/api/governance/virtual-keys",
            get(governance::list).post(governance::add),
        )
        .route(
            "/api/governance/virtual-keys/{name}",
            put(governance::edit).delete(governance::remove),
        )
        .route("/api/logs", get(logs::list))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            caller::require_admin,
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
