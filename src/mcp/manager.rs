//! The MCP manager: the set of upstream clients.
//!
//! Each client is a [`ManagedClient`](super::client) (its state under one lock) with its own
//! supervising task ([`supervisor`](super::supervisor)). The manager adds, replaces, reconnects
//! and removes clients, records runtime changes in the store when it has one, and answers the
//! registry: every client's status, and the tools of the connected ones. Tool calls are in
//! [`call`](super::call), reachable only through the [`Gateway`](crate::gateway::Gateway).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::{RwLock, broadcast};

use super::auth::{Authorized, OAuth, OAuthError, OPERATOR};
use super::client::{Changes, ClientEvent, ClientStatus, Connection, ManagedClient};
use super::in_process::{InProcessServer, InProcessTool};
use super::tools::ClientTools;
use crate::config::mcp::AGENT_DEPTHS;
use crate::config::{
    ClientConfig, ConnectionType, IN_PROCESS_NOT_CONFIGURABLE, McpConfig, ToolManagerConfig,
};
use crate::store::memory::MemoryTokens;
use crate::store::{ClientStore, StoreError, merge_clients};

/// A change to the set of clients that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// No client has this name.
    #[error("there is no MCP client named {0}")]
    NotFound(String),
    /// A client with this name exists already.
    #[error("an MCP client named {0} exists already")]
    Duplicate(String),
    /// The change is not valid (the reason says why).
    #[error("{0}")]
    Invalid(String),
    /// The change could not be persisted (and was not made).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An OAuth step failed.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
}

/// The stored name of the `max_agent_depth` setting.
const MAX_AGENT_DEPTH: &str = "max_agent_depth";

/// All upstream clients.
pub struct McpManager {
    /// The clients by name. Held only to look up, insert or remove: never across a store
    /// write or a connection attempt, so calls never wait on either.
    clients: RwLock<BTreeMap<String, Arc<ManagedClient>>>,
    /// Serialises changes to the set across their store write: a change is checked, committed
    /// to the store, then applied, and two concurrent adds of one name cannot both pass the
    /// check.
    edits: tokio::sync::Mutex<()>,
    settings: ToolManagerConfig,
    /// `max_agent_depth`, which the API may change while the service runs.
    max_agent_depth: AtomicU32,
    /// Where changes made at run time are recorded, when persistence is on.
    store: Option<Arc<dyn ClientStore>>,
    /// Upstream OAuth: flows in progress and tokens.
    oauth: Arc<OAuth>,
    changes: Arc<Changes>,
}

impl Drop for McpManager {
    fn drop(&mut self) {
        // Supervisors hold their client; stop them so sessions (and stdio children) end now.
        if let Ok(clients) = self.clients.try_read() {
            clients.values().for_each(|client| client.stop());
        }
    }
}

impl McpManager {
    /// A manager with no clients.
    pub fn new(settings: ToolManagerConfig) -> Self {
        McpManager {
            clients: RwLock::new(BTreeMap::new()),
            edits: tokio::sync::Mutex::new(()),
            max_agent_depth: AtomicU32::new(settings.max_agent_depth),
            settings,
            store: None,
            oauth: Arc::new(OAuth::new(
                Arc::new(MemoryTokens::default()),
                "http://localhost",
                None,
            )),
            changes: Changes::new(),
        }
    }

    /// Upstream OAuth: flows in progress and tokens.
    pub fn oauth(&self) -> &Arc<OAuth> {
        &self.oauth
    }

    /// State changes of every client from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.changes.subscribe()
    }

    /// A number that changes whenever any client's state or tools change, or a client is added
    /// or removed.
    pub fn generation(&self) -> u64 {
        self.changes.generation()
    }

    /// A manager with `config`'s clients, all connected (or failed) concurrently.
    pub async fn start(config: &McpConfig) -> Self {
        let manager = McpManager::new(config.tool_manager_config.clone());
        manager.connect_all(&config.client_configs).await;
        manager
    }

    /// A manager with `config`'s clients and the changes `store` recorded (which win), that
    /// records every later change in `store`.
    ///
    /// # Errors
    /// [`StoreError`] when the recorded changes cannot be read.
    pub async fn start_with_store(
        config: &McpConfig,
        store: Arc<dyn ClientStore>,
        oauth: Arc<OAuth>,
    ) -> Result<Self, StoreError> {
        let changes = store.client_changes().await?;
        let clients = merge_clients(&config.client_configs, changes);
        let mut manager = McpManager::new(config.tool_manager_config.clone());
        manager.oauth = oauth;
        for (name, value) in store.settings().await? {
            match (
                name.as_str(),
                value.as_u64().and_then(|v| u32::try_from(v).ok()),
            ) {
                (MAX_AGENT_DEPTH, Some(depth)) if AGENT_DEPTHS.contains(&depth) => {
                    manager.max_agent_depth = AtomicU32::new(depth);
                }
                _ => {
                    tracing::warn!(setting = %name, "ignoring a stored setting codemode does not use")
                }
            }
        }
        manager.store = Some(store);
        manager.connect_all(&clients).await;
        Ok(manager)
    }

    /// Adds `configs` and waits for each one's first connection attempt (retries go on in the
    /// background).
    async fn connect_all(&self, configs: &[ClientConfig]) {
        let mut clients = self.clients.write().await;
        for config in configs {
            clients.insert(
                config.name.clone(),
                ManagedClient::new(
                    config.clone(),
                    None,
                    Arc::clone(&self.oauth),
                    Arc::clone(&self.changes),
                ),
            );
        }
        let all: Vec<Arc<ManagedClient>> = clients.values().cloned().collect();
        drop(clients);
        futures::future::join_all(all.iter().map(|client| client.supervise(&self.settings))).await;
    }

    /// Adds a client and connects it. The client stays listed whatever the outcome; its status
    /// says whether it connected.
    ///
    /// # Errors
    /// [`ManagerError::Duplicate`] when the name is taken.
    pub async fn add(&self, config: ClientConfig) -> Result<ClientStatus, ManagerError> {
        if config.connection_type == ConnectionType::InProcess {
            return Err(ManagerError::Invalid(IN_PROCESS_NOT_CONFIGURABLE.into()));
        }
        self.insert(config, None).await
    }

    /// Adds a client whose `tools` run in this process: a Rust program that embeds codemode
    /// offers its own functions to scripts and HTTP callers this way. The client is not
    /// persisted; its tool lists can be changed like any client's.
    ///
    /// # Errors
    /// [`ManagerError::Duplicate`] when the name is taken, [`ManagerError::Invalid`] when it is
    /// not a valid client name.
    pub async fn add_in_process(
        &self,
        name: &str,
        tools: Vec<InProcessTool>,
    ) -> Result<ClientStatus, ManagerError> {
        let config = ClientConfig::in_process(name)
            .map_err(|error| ManagerError::Invalid(error.to_string()))?;
        self.insert(config, Some(InProcessServer::new(tools))).await
    }

    async fn insert(
        &self,
        config: ClientConfig,
        in_process: Option<InProcessServer>,
    ) -> Result<ClientStatus, ManagerError> {
        let name = config.name.clone();
        let edit = self.edits.lock().await;
        if self.clients.read().await.contains_key(&name) {
            return Err(ManagerError::Duplicate(name));
        }
        if let (Some(store), None) = (&self.store, &in_process) {
            store.save_client(&config).await?;
        }
        let client = ManagedClient::new(
            config,
            in_process,
            Arc::clone(&self.oauth),
            Arc::clone(&self.changes),
        );
        self.clients.write().await.insert(name, Arc::clone(&client));
        drop(edit);
        client.supervise(&self.settings).await;
        Ok(client.status())
    }

    /// Replaces a client's configuration. A change of tool lists only applies at once; any other
    /// change reconnects the client.
    ///
    /// # Errors
    /// [`ManagerError::NotFound`] when there is no such client.
    pub async fn replace(
        &self,
        name: &str,
        config: ClientConfig,
    ) -> Result<ClientStatus, ManagerError> {
        let edit = self.edits.lock().await;
        let client = self.get(name).await?;
        let in_process = config.connection_type == ConnectionType::InProcess;
        if in_process != client.in_process.is_some() {
            return Err(ManagerError::Invalid(
                "the connection_type of an inprocess client cannot change, nor become inprocess"
                    .into(),
            ));
        }
        if let (Some(store), false) = (&self.store, in_process) {
            store.save_client(&config).await?;
        }
        let before = client.config();
        let other_server = before.connection_string != config.connection_string
            || before.auth_type != config.auth_type
            || before.oauth_config != config.oauth_config;
        if other_server {
            // Tokens of one server (or authorization server, or registration) are never sent
            // to another.
            self.oauth.forget_client(name).await?;
            client.callers.clear();
        }
        let reconnect = client.replace_config(config);
        drop(edit);
        if reconnect {
            client.supervise(&self.settings).await;
        }
        Ok(client.status())
    }

    /// Removes a client, ending its session (a stdio child is stopped).
    ///
    /// # Errors
    /// [`ManagerError::NotFound`] when there is no such client.
    pub async fn remove(&self, name: &str) -> Result<(), ManagerError> {
        let _edit = self.edits.lock().await;
        if !self.clients.read().await.contains_key(name) {
            return Err(ManagerError::NotFound(name.to_string()));
        }
        if let Some(store) = &self.store {
            store.forget_client(name).await?;
        }
        let removed = self.clients.write().await.remove(name);
        self.changes.bump();
        let client = removed.ok_or_else(|| ManagerError::NotFound(name.to_string()))?;
        // Dropping the session ends it; a stdio child is stopped with it.
        client.close();
        // A client added later under this name must not inherit these authorizations.
        self.oauth.forget_client(name).await?;
        Ok(())
    }

    /// Finishes an OAuth authorization the server's callback brought back (`state`, `code`,
    /// `iss`): stores the tokens, then connects the client when they are the operator's (a
    /// connected client keeps its session, which uses the new token from its next request).
    ///
    /// # Errors
    /// [`ManagerError::OAuth`] naming the step that failed; nothing is stored then.
    pub async fn authorized(
        &self,
        state: &str,
        code: &str,
        issuer: Option<&str>,
    ) -> Result<Authorized, ManagerError> {
        let authorized = self.oauth.finish(state, code, issuer).await?;
        if let Ok(client) = self.get(&authorized.client).await {
            if authorized.subject == OPERATOR {
                if !client.is_connected() {
                    client.reset_failures();
                    client.supervise(&self.settings).await;
                }
            } else {
                client.callers.remove(&authorized.subject);
            }
        }
        Ok(authorized)
    }

    /// Revokes the authorization `subject` holds for `client` (at the server too, when it
    /// offers revocation) and forgets it: a caller's session closes; the operator's client
    /// needs authorizing again.
    ///
    /// # Errors
    /// [`ManagerError::NotFound`] when there is no such authorization.
    pub async fn revoke(&self, name: &str, subject: &str) -> Result<(), ManagerError> {
        if !self.oauth.revoke(name, subject).await? {
            return Err(ManagerError::NotFound(format!(
                "an OAuth authorization of {name} for {}",
                if subject == OPERATOR {
                    "its operator"
                } else {
                    subject
                }
            )));
        }
        if let Ok(client) = self.get(name).await {
            if subject == OPERATOR {
                client.stop();
                client.set(Connection::NeedsReauth {
                    reason: "its authorization was revoked".into(),
                    authorize_url: None,
                });
            } else {
                client.callers.remove(subject);
            }
        }
        Ok(())
    }

    /// Starts a new authorization of an OAuth client by its operator (the old token stays, and
    /// a connected client keeps working, until the new one replaces it); answers the client's
    /// status and the `authorize_url`.
    ///
    /// # Errors
    /// [`ManagerError::NotFound`]; [`ManagerError::Invalid`] for a client that does not use
    /// OAuth; [`ManagerError::OAuth`] when discovery or registration fails.
    pub async fn reauthorize(&self, name: &str) -> Result<(ClientStatus, String), ManagerError> {
        let client = self.get(name).await?;
        let config = client.config();
        if !config.auth_type.is_oauth() {
            return Err(ManagerError::Invalid(format!(
                "{name} does not use OAuth (its auth_type is headers)"
            )));
        }
        let authorize_url = self.oauth.start(&config, OPERATOR, None, false).await?;
        // A connected client keeps working with its token until the new one replaces it.
        if !client.is_connected() {
            client.stop();
            client.set(Connection::Authorizing {
                authorize_url: authorize_url.clone(),
            });
        }
        Ok((client.status(), authorize_url))
    }

    /// Ends every client's session (stdio servers are stopped); the clients stay listed, as
    /// disconnected. Used at shutdown, when tasks may still hold the manager.
    pub async fn close(&self) {
        let clients: Vec<Arc<ManagedClient>> =
            self.clients.read().await.values().cloned().collect();
        for client in clients {
            client.close();
        }
    }

    /// Drops a client's session and connects it again.
    ///
    /// # Errors
    /// [`ManagerError::NotFound`] when there is no such client.
    pub async fn reconnect(&self, name: &str) -> Result<ClientStatus, ManagerError> {
        let client = self.get(name).await?;
        client.reset_failures();
        client.supervise(&self.settings).await;
        Ok(client.status())
    }

    /// A client's configuration as written.
    ///
    /// # Errors
    /// [`ManagerError::NotFound`] when there is no such client.
    pub async fn config(&self, name: &str) -> Result<ClientConfig, ManagerError> {
        Ok(self.get(name).await?.config().as_ref().clone())
    }

    async fn get(&self, name: &str) -> Result<Arc<ManagedClient>, ManagerError> {
        self.clients
            .read()
            .await
            .get(name)
            .cloned()
            .ok_or_else(|| ManagerError::NotFound(name.to_string()))
    }

    /// Whether agent mode may run `client`'s `tool` without asking (its configuration's
    /// `tools_to_auto_execute`); `false` for a client that does not exist.
    pub async fn auto_executes(&self, client: &str, tool: &str) -> bool {
        match self.get(client).await {
            Ok(managed) => managed.config().auto_executes(tool),
            Err(_) => false,
        }
    }

    /// The most rounds of tool execution of one agent-mode request.
    pub fn max_agent_depth(&self) -> u32 {
        self.max_agent_depth.load(Ordering::Relaxed)
    }

    /// Changes [`max_agent_depth`](Self::max_agent_depth) (1–50), persisted when the store is
    /// on; requests already running keep the depth they started with.
    ///
    /// # Errors
    /// [`ManagerError::Invalid`] outside 1–50; [`ManagerError::Store`] when it cannot be saved.
    pub async fn set_max_agent_depth(&self, depth: u32) -> Result<(), ManagerError> {
        if !AGENT_DEPTHS.contains(&depth) {
            return Err(ManagerError::Invalid(format!(
                "max_agent_depth: must be between 1 and 50, not {depth}"
            )));
        }
        let _edit = self.edits.lock().await;
        if let Some(store) = &self.store {
            store
                .save_setting(MAX_AGENT_DEPTH, &serde_json::json!(depth))
                .await?;
        }
        self.max_agent_depth.store(depth, Ordering::Relaxed);
        Ok(())
    }

    /// Splits an OpenAI-style tool name `<client>-<tool>` by the longest client name it starts
    /// with (client names may themselves hold hyphens).
    pub async fn resolve(&self, qualified: &str) -> Option<(String, String)> {
        let clients = self.clients.read().await;
        clients
            .keys()
            .filter_map(|client| {
                let tool = qualified.strip_prefix(client.as_str())?.strip_prefix('-')?;
                (!tool.is_empty()).then(|| (client.clone(), tool.to_string()))
            })
            .max_by_key(|(client, _)| client.len())
    }

    /// The state of every client, by name.
    pub async fn status(&self) -> Vec<ClientStatus> {
        let clients: Vec<Arc<ManagedClient>> =
            self.clients.read().await.values().cloned().collect();
        clients.iter().map(|client| client.status()).collect()
    }

    /// The tools every connected client may run, with full definitions, by client name.
    pub async fn tools(&self) -> Vec<ClientTools> {
        let clients: Vec<Arc<ManagedClient>> =
            self.clients.read().await.values().cloned().collect();
        clients
            .iter()
            .filter_map(|client| client.allowed_tools())
            .map(|(config, tools)| ClientTools {
                client: config.name.clone(),
                code_mode: config.is_code_mode_client,
                tools,
            })
            .collect()
    }

    /// The client named `name`, if any.
    pub(crate) async fn client(&self, name: &str) -> Option<Arc<ManagedClient>> {
        self.clients.read().await.get(name).cloned()
    }

    /// How long one call to `config`'s client may take.
    pub(crate) fn timeout(&self, config: &ClientConfig) -> Duration {
        Duration::from_secs(
            config
                .tool_execution_timeout
                .unwrap_or(self.settings.tool_execution_timeout),
        )
    }
}
