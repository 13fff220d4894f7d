//! The composition root: one [`App`] per process, built the same way by every subcommand.
//!
//! [`App::build`] takes a validated [`Config`] and a [`StoreChoice`] and wires the parts in
//! one order: the store, the MCP manager over the configured clients (with the store's runtime
//! changes applied), the sandbox executor (its limits checked against the `sandbox` section),
//! code mode, the audit log, the virtual keys, and the [`Gateway`] that joins them.
//! [`App::shutdown`] undoes it in one order too: the audit log is flushed, then every client
//! is stopped (stdio servers included). Nothing else in the crate starts long-lived tasks on its
//! own account.

use std::path::PathBuf;
use std::sync::Arc;

use crate::code_mode::CodeMode;
use crate::config::{Config, McpServerConfig, MissingVariable, resolve_env};
use crate::executor::{ExecuteError, Executor, ExecutorConfig, LimitError};
use crate::gateway::Gateway;
use crate::llm::Providers;
use crate::mcp::McpManager;
use crate::mcp::auth::OAuth;
use crate::observe::audit::AuditLog;
use crate::policy::KeyRing;
use crate::policy::keys::{KeyHash, hash_key};
use crate::server::ui::session::Sessions;
use crate::store::{Store, StoreError};

/// Where runtime changes and the audit log are kept.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// Nowhere: API changes last as long as the process, nothing is audited (one-shot
    /// commands).
    None,
    /// The SQLite database at this path (created when missing).
    Sqlite(PathBuf),
}

/// Why the application could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The admin token names an unset variable.
    #[error("governance.admin_token: {0}")]
    AdminToken(#[from] MissingVariable),
    /// The `sandbox` section asks for limits outside the server's maxima.
    #[error("sandbox: {0}")]
    Sandbox(#[from] LimitError),
    /// The embedded sandbox did not load (a broken build, never the configuration's fault).
    #[error(transparent)]
    Executor(#[from] ExecuteError),
}

/// Everything a running codemode holds.
pub struct App {
    /// The one path to tools and code.
    pub gateway: Arc<Gateway>,
    /// The upstream MCP clients (their management; calls go through the gateway).
    pub manager: Arc<McpManager>,
    /// The virtual keys.
    pub keys: KeyRing,
    /// Where tool executions are recorded, when there is a store.
    pub audit: Option<Arc<AuditLog>>,
    /// The store, for the audit log's queries.
    pub store: Option<Store>,
    /// The hash of the admin token that guards `/api/*`, when one is configured.
    pub admin_token: Option<KeyHash>,
    /// Who may reach `/mcp` by name.
    pub mcp_server: McpServerConfig,
    /// The LLM providers of `/v1/chat/completions`.
    pub providers: Arc<Providers>,
    /// Whether chat requests get no MCP tools added (`tool_manager_config`).
    pub disable_auto_tool_inject: bool,
    /// The header naming the end user behind a virtual key, when the operator trusts one.
    pub trusted_user_header: Option<String>,
    /// codemode's Client ID Metadata Document URL, when it has one.
    pub client_metadata_url: Option<String>,
    /// The web UI's login sessions.
    pub ui_sessions: Sessions,
}

impl App {
    /// Builds the application `config` describes, keeping runtime changes in `store`: connects
    /// every client (waiting for each one's first attempt) and loads the sandbox. Needs a Tokio
    /// runtime.
    ///
    /// # Errors
    /// [`AppError`] when the store cannot be opened, the `sandbox` limits exceed the maxima,
    /// the admin token's variable is unset, or the sandbox does not load.
    pub async fn build(config: &Config, store: StoreChoice) -> Result<App, AppError> {
        let store = match store {
            StoreChoice::None => None,
            // Opening creates and migrates the file: blocking work, off the runtime's workers.
            StoreChoice::Sqlite(path) => Some(
                tokio::task::spawn_blocking(move || Store::open(&path))
                    .await
                    .map_err(|error| StoreError::Task(error.to_string()))??,
            ),
        };
        let executor = Executor::new(ExecutorConfig {
            max_concurrent: config.sandbox.max_executions(),
            max_queued: config.sandbox.max_queued(),
            ..ExecutorConfig::default()
        })?;
        executor.config().limits.resolve(&config.sandbox.limits)?;
        let manager = match &store {
            Some(store) => {
                let oauth = Arc::new(OAuth::new(
                    Arc::clone(&store.tokens),
                    &public_url(config),
                    config.oauth.client_metadata_url(),
                ));
                McpManager::start_with_store(&config.mcp, Arc::clone(&store.clients), oauth).await?
            }
            None => McpManager::start(&config.mcp).await,
        };
        App::assemble(config, Arc::new(manager), executor, store).await
    }

    /// The application over parts made elsewhere: a program that embeds codemode (or a test)
    /// brings its own manager (with in-process tools, say) and executor. With a `store`, keys
    /// changed through the API persist and tool executions are audited; the audit writer needs
    /// a Tokio runtime.
    ///
    /// # Errors
    /// [`AppError`] when the store cannot be read or the admin token's variable is unset.
    pub async fn assemble(
        config: &Config,
        manager: Arc<McpManager>,
        executor: Executor,
        store: Option<Store>,
    ) -> Result<App, AppError> {
        let audit = store
            .as_ref()
            .map(|store| Arc::new(AuditLog::start(Arc::clone(&store.audit), config.audit)));
        let key_store = store.as_ref().map(|store| Arc::clone(&store.keys));
        let keys = KeyRing::load(&config.governance, key_store).await?;
        let provider_store = store.as_ref().map(|store| Arc::clone(&store.providers));
        let providers = Providers::load(&config.providers, provider_store).await?;
        let admin_token = match &config.governance.admin_token {
            Some(token) => Some(hash_key(&resolve_env(token)?)),
            None => None,
        };
        let code_mode = CodeMode::new(
            Arc::clone(&manager),
            executor,
            config.sandbox.limits,
            config.mcp.tool_manager_config.code_mode_binding_level,
        );
        let gateway = Arc::new(Gateway::new(Arc::clone(&manager), code_mode, audit.clone()));
        Ok(App {
            gateway,
            manager,
            keys,
            audit,
            store,
            admin_token,
            mcp_server: config.mcp_server.clone(),
            providers: Arc::new(providers),
            disable_auto_tool_inject: config.mcp.tool_manager_config.disable_auto_tool_inject,
            trusted_user_header: config.oauth.trusted_user_header.clone(),
            client_metadata_url: config.oauth.client_metadata_url(),
            ui_sessions: Sessions::default(),
        })
    }

    /// Waits until every audit record queued so far is written.
    pub async fn flush_audit(&self) {
        if let Some(audit) = &self.audit {
            audit.flush().await;
        }
    }

    /// Stops in order: writes every queued audit record, then ends every client's session
    /// (stdio servers are stopped).
    pub async fn shutdown(&self) {
        self.flush_audit().await;
        self.manager.close().await;
    }
}

/// Where browsers reach this codemode: `oauth.public_url`, else loopback on the default port
/// (`codemode serve` sets it to the address it listens on).
fn public_url(config: &Config) -> String {
    config
        .oauth
        .public_url
        .clone()
        .unwrap_or_else(|| "http://localhost:8080".into())
}
