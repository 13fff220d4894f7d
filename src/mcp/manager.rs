//! The MCP manager: the upstream clients, their state and tools, and the dispatch of calls.
//!
//! Each client is a [`ManagedClient`] behind an `Arc`, with its configuration as written (secrets
//! still `env.NAME` references) and its `Connection` behind a lock. A call clones the session's
//! `Arc` and releases the lock before it awaits the server, so calls run concurrently and a slow
//! server never blocks the registry.
//!
//! Each client also has one supervising task (`supervise`): it connects, retries transient
//! failures by the configured [`RetryPolicy`](crate::config::RetryPolicy), health-checks the
//! session (re-listing its tools) and reconnects when it drops. Adding, replacing with a new
//! connection, reconnecting and removing a client restart or stop that task; every state change
//! is published to [`McpManager::subscribe`].
//!
//! Its call API is private to the crate: callers reach tools through the
//! [`Gateway`](crate::gateway::Gateway), which checks their permit first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use rmcp::ServiceError;
use rmcp::handler::client::progress::ProgressDispatcher;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, ContentBlock,
    ProgressNotificationParam, ServerResult, Tool,
};
use rmcp::service::PeerRequestOptions;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, RwLock, broadcast, oneshot};
use tokio::task::AbortHandle;

use super::connection::{Session, Upstream, connect};
use super::in_process::{InProcessServer, InProcessTool};
use super::registry::ClientTools;
use super::result::tool_value;
use crate::config::{
    ClientConfig, ConnectionType, IN_PROCESS_NOT_CONFIGURABLE, McpConfig, ToolManagerConfig,
};
use crate::executor::ToolError;
use crate::store::{Store, StoreError, merge_clients};

/// A client's connection state, as the management API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientState {
    /// Connecting (or reconnecting).
    Connecting,
    /// Connected; its tools are listed.
    Connected,
    /// Was connected; the session ended.
    Disconnected,
    /// Could not connect; `last_error` says why.
    Error,
}

/// What the manager knows about one client.
#[derive(Debug, Clone, Serialize)]
pub struct ClientStatus {
    /// The client's name.
    pub name: String,
    /// Its configuration as written, with literal header values redacted.
    pub config: ClientConfig,
    /// Its state.
    pub state: ClientState,
    /// The last connection error, if any.
    pub last_error: Option<String>,
    /// Names of the tools it may run (after `tools_to_execute` and `tools_to_skip`).
    pub tools: Vec<String>,
    /// Connection attempts that failed since it was added or last connected.
    pub failed_attempts: u32,
    /// The process id of a stdio client's server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// A change of one client, as [`McpManager::subscribe`] reports it: a new state, or (with the
/// state still `connected`) a change of the tools it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEvent {
    /// The client.
    pub client: String,
    /// Its new state.
    pub state: ClientState,
}

enum Connection {
    Connecting,
    Connected {
        link: Link,
        tools: Vec<Tool>,
        pid: Option<u32>,
    },
    Disconnected,
    Failed(String),
}

/// Where the clients report changes: subscribers, and a counter that moves on every change of
/// any client's state or tools (so derived views, such as code-mode stubs, know when to rebuild).
struct Changes {
    events: broadcast::Sender<ClientEvent>,
    generation: AtomicU64,
}

/// What a call goes through: an MCP session, or the handlers of an in-process client.
#[derive(Clone)]
enum Link {
    Mcp(Arc<Session>),
    InProcess(Arc<InProcessServer>),
}

/// One upstream client and the task that keeps it connected.
pub struct ManagedClient {
    config: std::sync::RwLock<Arc<ClientConfig>>,
    connection: RwLock<Connection>,
    failed_attempts: AtomicU32,
    /// Wakes the health check, which re-lists the tools, at once: a call saw the connection
    /// drop, or the server sent `notifications/tools/list_changed`.
    check_now: Arc<Notify>,
    /// The tools of an in-process client, which has no connection to supervise.
    in_process: Option<Arc<InProcessServer>>,
    /// Where the server's progress notifications go, by token.
    progress: ProgressDispatcher,
    supervisor: std::sync::Mutex<Option<AbortHandle>>,
    changes: Arc<Changes>,
}

impl ManagedClient {
    fn new(
        config: ClientConfig,
        in_process: Option<InProcessServer>,
        changes: Arc<Changes>,
    ) -> Arc<Self> {
        Arc::new(ManagedClient {
            config: std::sync::RwLock::new(Arc::new(config)),
            connection: RwLock::new(Connection::Connecting),
            failed_attempts: AtomicU32::new(0),
            check_now: Arc::new(Notify::new()),
            in_process: in_process.map(Arc::new),
            progress: ProgressDispatcher::new(),
            supervisor: std::sync::Mutex::new(None),
            changes,
        })
    }

    fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(
            &self
                .config
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    async fn status(&self) -> ClientStatus {
        let config = self.config();
        let connection = self.connection.read().await;
        let (state, last_error, tools, pid) = match &*connection {
            Connection::Connecting => (ClientState::Connecting, None, Vec::new(), None),
            Connection::Connected { tools, pid, .. } => {
                let names = tools
                    .iter()
                    .map(|t| t.name.to_string())
                    .filter(|n| tool_allowed(&config, n))
                    .collect();
                (ClientState::Connected, None, names, *pid)
            }
            Connection::Disconnected => (ClientState::Disconnected, None, Vec::new(), None),
            Connection::Failed(error) => {
                (ClientState::Error, Some(error.clone()), Vec::new(), None)
            }
        };
        ClientStatus {
            name: config.name.clone(),
            config: redacted(&config),
            state,
            last_error,
            tools,
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            pid,
        }
    }

    async fn set(&self, connection: Connection) {
        let state = match &connection {
            Connection::Connecting => ClientState::Connecting,
            Connection::Connected { .. } => ClientState::Connected,
            Connection::Disconnected => ClientState::Disconnected,
            Connection::Failed(_) => ClientState::Error,
        };
        *self.connection.write().await = connection;
        self.publish(state);
    }

    fn publish(&self, state: ClientState) {
        self.changes.generation.fetch_add(1, Ordering::Relaxed);
        // Nobody listening is fine.
        let _ = self.changes.events.send(ClientEvent {
            client: self.config().name.clone(),
            state,
        });
    }

    /// Starts (or restarts) the task that connects this client and keeps it connected; returns
    /// once the first connection attempt has finished.
    async fn supervise(self: &Arc<Self>, settings: &ToolManagerConfig) {
        self.stop();
        let (first_attempt, attempted) = oneshot::channel();
        let task = tokio::spawn(supervise(Arc::clone(self), settings.clone(), first_attempt));
        *self.supervisor.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        let _ = attempted.await;
    }

    /// Stops the supervising task, if any.
    fn stop(&self) {
        if let Some(task) = self
            .supervisor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

/// Connects `client`, retrying transient failures, then health-checks it every interval and
/// reconnects when it drops. Ends when the retries are used up or a failure is permanent; an
/// API reconnect starts it again.
async fn supervise(
    client: Arc<ManagedClient>,
    settings: ToolManagerConfig,
    first_attempt: oneshot::Sender<()>,
) {
    if let Some(server) = &client.in_process {
        let tools = valid_tools(&client.config().name, server.definitions());
        let link = Link::InProcess(Arc::clone(server));
        let pid = None;
        client.set(Connection::Connected { link, tools, pid }).await;
        let _ = first_attempt.send(());
        return;
    }
    let mut first_attempt = Some(first_attempt);
    let policy = settings.connect_retry;
    let interval = Duration::from_millis(settings.health_check_interval_ms.max(10));
    loop {
        let mut attempt = 0;
        let connected = loop {
            attempt += 1;
            client.set(Connection::Connecting).await;
            let config = client.config();
            let handler = Upstream::new(Arc::clone(&client.check_now), client.progress.clone());
            match connect(&config, handler).await {
                Ok(connected) => break Some(connected),
                Err(error) => {
                    client.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    let retry = error.is_transient() && attempt < policy.max_tries.max(1);
                    tracing::warn!(client = %config.name, %error, attempt, retry, "connection failed");
                    client.set(Connection::Failed(error.to_string())).await;
                    if let Some(done) = first_attempt.take() {
                        let _ = done.send(());
                    }
                    if !retry {
                        break None;
                    }
                    tokio::time::sleep(policy.backoff(attempt)).await;
                }
            }
        };
        let Some(connected) = connected else { return };
        let config = client.config();
        let tools = valid_tools(&config.name, connected.tools);
        tracing::info!(client = %config.name, tools = tools.len(), "connected");
        let session = Arc::new(connected.session);
        client.failed_attempts.store(0, Ordering::Relaxed);
        client
            .set(Connection::Connected {
                link: Link::Mcp(Arc::clone(&session)),
                tools,
                pid: connected.pid,
            })
            .await;
        if let Some(done) = first_attempt.take() {
            let _ = done.send(());
        }
        watch_health(&client, &session, interval).await;
        tracing::warn!(client = %config.name, "connection lost; reconnecting");
        client.set(Connection::Disconnected).await;
    }
}

/// Returns when the session has ended or stopped answering. Each check re-lists the tools, so
/// the list also follows upstream changes.
async fn watch_health(client: &ManagedClient, session: &Session, interval: Duration) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = client.check_now.notified() => {}
        }
        if session.is_closed() {
            return;
        }
        match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, session.list_all_tools()).await {
            Ok(Ok(tools)) => {
                let tools = valid_tools(&client.config().name, tools);
                let changed = match &mut *client.connection.write().await {
                    Connection::Connected { tools: current, .. } if *current != tools => {
                        *current = tools;
                        true
                    }
                    _ => false,
                };
                if changed {
                    client.publish(ClientState::Connected);
                }
            }
            _ => return,
        }
    }
}

/// How long a health check may take before the connection counts as lost.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// All upstream clients.
pub struct McpManager {
    clients: RwLock<BTreeMap<String, Arc<ManagedClient>>>,
    settings: ToolManagerConfig,
    /// Where changes made at run time are recorded, when persistence is on.
    store: Option<Arc<Store>>,
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
            settings,
            store: None,
            changes: Arc::new(Changes {
                events: broadcast::channel(256).0,
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// State changes of every client from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.changes.events.subscribe()
    }

    /// A number that changes whenever any client's state or tools change, or a client is added
    /// or removed.
    pub fn generation(&self) -> u64 {
        self.changes.generation.load(Ordering::Relaxed)
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
        store: Arc<Store>,
    ) -> Result<Self, StoreError> {
        let clients = merge_clients(&config.client_configs, store.client_changes()?);
        let mut manager = McpManager::new(config.tool_manager_config.clone());
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
                ManagedClient::new(config.clone(), None, Arc::clone(&self.changes)),
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
        let client = {
            let mut clients = self.clients.write().await;
            if clients.contains_key(&name) {
                return Err(ManagerError::Duplicate(name));
            }
            if let (Some(store), None) = (&self.store, &in_process) {
                store.save_client(&config)?;
            }
            let client = ManagedClient::new(config, in_process, Arc::clone(&self.changes));
            clients.insert(name, Arc::clone(&client));
            client
        };
        client.supervise(&self.settings).await;
        Ok(client.status().await)
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
        let client = self.get(name).await?;
        let in_process = config.connection_type == ConnectionType::InProcess;
        if in_process != client.in_process.is_some() {
            return Err(ManagerError::Invalid(
                "the connection_type of an inprocess client cannot change, nor become inprocess"
                    .into(),
            ));
        }
        if let (Some(store), false) = (&self.store, in_process) {
            store.save_client(&config)?;
        }
        let reconnect = !same_connection(&client.config(), &config);
        *client.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        if reconnect {
            client.supervise(&self.settings).await;
        } else if let Connection::Connected { .. } = &*client.connection.read().await {
            client.publish(ClientState::Connected);
        }
        Ok(client.status().await)
    }

    /// Removes a client, ending its session (a stdio child is stopped).
    ///
    /// # Errors
    /// [`ManagerError::NotFound`] when there is no such client.
    pub async fn remove(&self, name: &str) -> Result<(), ManagerError> {
        let mut clients = self.clients.write().await;
        if !clients.contains_key(name) {
            return Err(ManagerError::NotFound(name.to_string()));
        }
        if let Some(store) = &self.store {
            store.forget_client(name)?;
        }
        let removed = clients.remove(name);
        self.changes.generation.fetch_add(1, Ordering::Relaxed);
        drop(clients);
        let client = removed.ok_or_else(|| ManagerError::NotFound(name.to_string()))?;
        client.stop();
        // Dropping the session ends it; a stdio child is stopped with it.
        *client.connection.write().await = Connection::Disconnected;
        Ok(())
    }

    /// Ends every client's session (stdio servers are stopped); the clients stay listed, as
    /// disconnected. Used at shutdown, when tasks may still hold the manager.
    pub async fn close(&self) {
        let clients: Vec<Arc<ManagedClient>> =
            self.clients.read().await.values().cloned().collect();
        for client in clients {
            client.stop();
            *client.connection.write().await = Connection::Disconnected;
        }
    }

    /// Drops a client's session and connects it again.
    ///
    /// # Errors
    /// [`ManagerError::NotFound`] when there is no such client.
    pub async fn reconnect(&self, name: &str) -> Result<ClientStatus, ManagerError> {
        let client = self.get(name).await?;
        client.failed_attempts.store(0, Ordering::Relaxed);
        client.supervise(&self.settings).await;
        Ok(client.status().await)
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
        let mut statuses = Vec::with_capacity(clients.len());
        for client in clients {
            statuses.push(client.status().await);
        }
        statuses
    }

    /// The tools every connected client may run, with full definitions, by client name.
    pub async fn tools(&self) -> Vec<ClientTools> {
        let clients: Vec<Arc<ManagedClient>> =
            self.clients.read().await.values().cloned().collect();
        let mut registry = Vec::with_capacity(clients.len());
        for client in clients {
            let config = client.config();
            if let Connection::Connected { tools, .. } = &*client.connection.read().await {
                registry.push(ClientTools {
                    client: config.name.clone(),
                    code_mode: config.is_code_mode_client,
                    tools: tools
                        .iter()
                        .filter(|t| tool_allowed(&config, &t.name))
                        .cloned()
                        .collect(),
                });
            }
        }
        registry
    }

    fn timeout(&self, config: &ClientConfig) -> Duration {
        Duration::from_secs(
            config
                .tool_execution_timeout
                .unwrap_or(self.settings.tool_execution_timeout),
        )
    }
}

/// What a tool answered: an MCP server's result as the server sent it, or the value of an
/// in-process tool.
#[derive(Debug, Clone)]
pub enum ToolAnswer {
    /// An MCP `CallToolResult` (which may carry `isError`).
    Mcp(CallToolResult),
    /// An in-process tool's value.
    Value(Value),
}

impl ToolAnswer {
    /// What a script receives: `structuredContent`, else the text (parsed when it is JSON),
    /// several blocks as a list; an `isError` result is a [`ToolError::Failed`].
    ///
    /// # Errors
    /// [`ToolError::Failed`] for an `isError` result or one that cannot be read.
    pub fn into_value(self) -> Result<Value, ToolError> {
        match self {
            ToolAnswer::Value(value) => Ok(value),
            ToolAnswer::Mcp(result) => {
                let result = serde_json::to_value(&result).map_err(|e| {
                    ToolError::Failed(format!("the tool's result could not be read: {e}"))
                })?;
                tool_value(&result)
            }
        }
    }

    /// The answer as an MCP result: passed through as received, or an in-process value as
    /// text (and as `structuredContent` when it is an object).
    pub fn into_result(self) -> CallToolResult {
        match self {
            ToolAnswer::Mcp(result) => result,
            ToolAnswer::Value(value @ Value::Object(_)) => CallToolResult::structured(value),
            ToolAnswer::Value(Value::String(text)) => {
                CallToolResult::success(vec![ContentBlock::text(text)])
            }
            ToolAnswer::Value(other) => {
                CallToolResult::success(vec![ContentBlock::text(other.to_string())])
            }
        }
    }

    /// Whether the tool reported an error (`isError`).
    pub fn is_error(&self) -> bool {
        matches!(self, ToolAnswer::Mcp(result) if result.is_error == Some(true))
    }
}

impl McpManager {
    /// Calls `client`'s `tool` with `arguments` (a JSON object) within the client's time limit,
    /// if the client's configuration allows it; the answer is passed back as received, and the
    /// server's progress notifications for this call go to `progress` (their token is
    /// codemode's own, one per call).
    ///
    /// Crate-private on purpose: callers reach tools through the
    /// [`Gateway`](crate::gateway::Gateway), which checks their permit first.
    ///
    /// # Errors
    /// A [`ToolError`]: unknown client or tool, not allowed, not connected, timed out, or the
    /// call failed on the way.
    pub(crate) async fn call_tool(
        &self,
        client: &str,
        tool: &str,
        arguments: Value,
        progress: Option<ProgressSender>,
    ) -> Result<ToolAnswer, ToolError> {
        let managed = self.clients.read().await.get(client).cloned();
        let Some(managed) = managed else {
            return Err(ToolError::NotFound(format!(
                "there is no MCP client named {client}"
            )));
        };
        let config = managed.config();
        if !tool_allowed(&config, tool) {
            return Err(ToolError::Denied(format!(
                "{client}.{tool} is not allowed by the client's configuration"
            )));
        }
        let link = match &*managed.connection.read().await {
            Connection::Connected { link, tools, .. } => {
                if !tools.iter().any(|t| t.name == tool) {
                    return Err(ToolError::NotFound(format!(
                        "{client} has no tool named {tool}"
                    )));
                }
                link.clone()
            }
            Connection::Connecting => {
                return Err(ToolError::Unavailable(format!(
                    "{client} is still connecting"
                )));
            }
            Connection::Disconnected => {
                return Err(ToolError::Unavailable(format!(
                    "{client} is disconnected; codemode is reconnecting it"
                )));
            }
            Connection::Failed(error) => {
                return Err(ToolError::Unavailable(format!(
                    "{client} is not connected: {error}"
                )));
            }
        };
        let timeout = self.timeout(&config);
        let call = async {
            match link {
                Link::Mcp(session) => {
                    call_mcp(&managed, &session, client, tool, arguments, progress)
                        .await
                        .map(ToolAnswer::Mcp)
                }
                Link::InProcess(server) => {
                    server.call(tool, arguments).await.map(ToolAnswer::Value)
                }
            }
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| ToolError::Timeout(timeout))?
    }
}

/// How long progress is still forwarded after a call's answer (in the background).
const PROGRESS_GRACE: Duration = Duration::from_millis(5);

/// Where a call's progress notifications are sent.
pub type ProgressSender = tokio::sync::mpsc::UnboundedSender<ProgressNotificationParam>;

/// Calls `tool` over an MCP session, forwarding its progress to `progress`.
async fn call_mcp(
    managed: &ManagedClient,
    session: &Session,
    client: &str,
    tool: &str,
    arguments: Value,
    progress: Option<ProgressSender>,
) -> Result<CallToolResult, ToolError> {
    let arguments = match arguments {
        Value::Object(map) => map,
        _ => Default::default(),
    };
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
    let answer = match progress {
        None => session.call_tool(params).await,
        Some(sink) => call_reporting(managed, session, params, sink).await,
    };
    answer.map_err(|error| {
        let error = service_error(client, error);
        if matches!(error, ToolError::Unavailable(_)) {
            managed.check_now.notify_one();
        }
        error
    })
}

/// Sends a `tools/call` and forwards the progress notifications rmcp's own token collects, until
/// the answer arrives.
async fn call_reporting(
    managed: &ManagedClient,
    session: &Session,
    params: CallToolRequestParams,
    sink: ProgressSender,
) -> Result<CallToolResult, ServiceError> {
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
    let handle = session
        .send_request_with_option(request, PeerRequestOptions::no_options())
        .await?;
    let mut updates = managed
        .progress
        .subscribe(handle.progress_token.clone())
        .await;
    let answer = handle.await_response();
    tokio::pin!(answer);
    let answer = loop {
        tokio::select! {
            answer = &mut answer => break answer?,
            Some(update) = updates.next() => { let _ = sink.send(update); }
        }
    };
    // rmcp hands each notification to its handler on a task of its own, so the last updates
    // can land just after the answer: forward what comes within a moment, without holding the
    // answer back (every rmcp request carries a progress token, so this is every call's path).
    tokio::spawn(async move {
        while let Ok(Some(update)) = tokio::time::timeout(PROGRESS_GRACE, updates.next()).await {
            let _ = sink.send(update);
        }
    });
    match answer {
        ServerResult::CallToolResult(result) => Ok(result),
        _ => Err(ServiceError::UnexpectedResponse),
    }
}

fn service_error(client: &str, error: ServiceError) -> ToolError {
    match error {
        ServiceError::McpError(error) => ToolError::Failed(error.message.to_string()),
        ServiceError::Timeout { timeout } => ToolError::Timeout(timeout),
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
            ToolError::Unavailable(format!("the connection to {client} was lost"))
        }
        other => ToolError::Failed(other.to_string()),
    }
}

/// Whether two configurations reach the server the same way (only tool lists differ).
fn same_connection(a: &ClientConfig, b: &ClientConfig) -> bool {
    a.connection_type == b.connection_type
        && a.stdio_config == b.stdio_config
        && a.connection_string == b.connection_string
        && a.headers == b.headers
}

/// `config` with literal header values hidden; `env.NAME` references are shown, being names.
fn redacted(config: &ClientConfig) -> ClientConfig {
    let mut config = config.clone();
    for value in config.headers.values_mut() {
        if !value.starts_with("env.") {
            *value = "<redacted>".into();
        }
    }
    config
}

/// Whether `config` lets `tool` run: `tools_to_execute` absent or `["*"]` allows all, `[]`
/// none, else the names it lists; `tools_to_skip` then removes names.
pub fn tool_allowed(config: &ClientConfig, tool: &str) -> bool {
    let listed = match &config.tools_to_execute {
        None => true,
        Some(names) => names.iter().any(|n| n == "*" || n == tool),
    };
    listed && !config.tools_to_skip.iter().any(|n| n == tool)
}

/// Drops upstream tools whose names cannot be addressed safely, saying why.
fn valid_tools(client: &str, tools: Vec<Tool>) -> Vec<Tool> {
    tools
        .into_iter()
        .filter(|tool| {
            let name = tool.name.as_ref();
            let valid = !name.is_empty()
                && name.len() <= 128
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid {
                tracing::warn!(
                    client,
                    tool = name,
                    "skipping a tool whose name is not [A-Za-z0-9_.-]{{1,128}}"
                );
            }
            valid
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(execute: Option<&[&str]>, skip: &[&str]) -> ClientConfig {
        let mut config = ClientConfig::parse(
            r#"{"name": "c", "connection_type": "stdio", "stdio_config": {"command": "x"}}"#,
        )
        .expect("valid");
        config.tools_to_execute =
            execute.map(|names| names.iter().map(|s| s.to_string()).collect());
        config.tools_to_skip = skip.iter().map(|s| s.to_string()).collect();
        config
    }

    #[test]
    fn tools_to_execute_and_skip_filter_as_documented() {
        assert!(tool_allowed(&client(None, &[]), "any"));
        assert!(tool_allowed(&client(Some(&["*"]), &[]), "any"));
        assert!(!tool_allowed(&client(Some(&[]), &[]), "any"));
        assert!(tool_allowed(&client(Some(&["a"]), &[]), "a"));
        assert!(!tool_allowed(&client(Some(&["a"]), &[]), "b"));
        assert!(!tool_allowed(&client(Some(&["*"]), &["a"]), "a"));
    }
}
