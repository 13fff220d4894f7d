//! The MCP manager: the upstream clients, their state and tools, and the dispatch of calls.
//!
//! Each client is a [`ManagedClient`] behind an `Arc`, with its configuration as written (secrets
//! still `env.NAME` references) and its [`Connection`] behind a lock. A call clones the session's
//! `Arc` and releases the lock before it awaits the server, so calls run concurrently and a slow
//! server never blocks the registry.
//!
//! The manager is the sandbox's [`ToolDispatcher`]: scripts run by `codemode run --config` call
//! real tools through it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rmcp::ServiceError;
use rmcp::model::{CallToolRequestParams, Tool};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::RwLock;

use super::connection::{Session, connect};
use super::result::tool_value;
use crate::config::{ClientConfig, McpConfig, ToolManagerConfig};
use crate::executor::{ToolDispatcher, ToolError};
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
}

enum Connection {
    Connecting,
    Connected {
        session: Arc<Session>,
        tools: Vec<Tool>,
    },
    Failed(String),
}

/// One upstream client.
pub struct ManagedClient {
    config: ClientConfig,
    connection: RwLock<Connection>,
}

impl ManagedClient {
    async fn status(&self) -> ClientStatus {
        let connection = self.connection.read().await;
        let (state, last_error, tools) = match &*connection {
            Connection::Connecting => (ClientState::Connecting, None, Vec::new()),
            Connection::Connected { session, tools } => {
                let state = if session.is_closed() {
                    ClientState::Disconnected
                } else {
                    ClientState::Connected
                };
                let names = tools
                    .iter()
                    .map(|t| t.name.to_string())
                    .filter(|n| tool_allowed(&self.config, n))
                    .collect();
                (state, None, names)
            }
            Connection::Failed(error) => (ClientState::Error, Some(error.clone()), Vec::new()),
        };
        ClientStatus {
            name: self.config.name.clone(),
            config: redacted(&self.config),
            state,
            last_error,
            tools,
        }
    }

    async fn connect(&self) {
        *self.connection.write().await = Connection::Connecting;
        let connection = match connect(&self.config).await {
            Ok((session, tools)) => {
                let tools = valid_tools(&self.config.name, tools);
                tracing::info!(client = %self.config.name, tools = tools.len(), "connected");
                Connection::Connected {
                    session: Arc::new(session),
                    tools,
                }
            }
            Err(error) => {
                tracing::warn!(client = %self.config.name, %error, "connection failed");
                Connection::Failed(error.to_string())
            }
        };
        *self.connection.write().await = connection;
    }
}

/// A change to the set of clients that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// No client has this name.
    #[error("there is no MCP client named {0}")]
    NotFound(String),
    /// A client with this name exists already.
    #[error("an MCP client named {0} exists already")]
    Duplicate(String),
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
}

impl McpManager {
    /// A manager with no clients.
    pub fn new(settings: ToolManagerConfig) -> Self {
        McpManager {
            clients: RwLock::new(BTreeMap::new()),
            settings,
            store: None,
        }
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

    async fn connect_all(&self, configs: &[ClientConfig]) {
        let mut clients = self.clients.write().await;
        for client in configs {
            let managed = Arc::new(ManagedClient {
                config: client.clone(),
                connection: RwLock::new(Connection::Connecting),
            });
            clients.insert(client.name.clone(), managed);
        }
        let all: Vec<Arc<ManagedClient>> = clients.values().cloned().collect();
        drop(clients);
        futures::future::join_all(all.iter().map(|client| client.connect())).await;
    }

    /// Adds a client and connects it. The client stays listed whatever the outcome; its status
    /// says whether it connected.
    ///
    /// # Errors
    /// [`ManagerError::Duplicate`] when the name is taken.
    pub async fn add(&self, config: ClientConfig) -> Result<ClientStatus, ManagerError> {
        let client = Arc::new(ManagedClient {
            config,
            connection: RwLock::new(Connection::Connecting),
        });
        {
            let mut clients = self.clients.write().await;
            if clients.contains_key(&client.config.name) {
                return Err(ManagerError::Duplicate(client.config.name.clone()));
            }
            if let Some(store) = &self.store {
                store.save_client(&client.config)?;
            }
            clients.insert(client.config.name.clone(), Arc::clone(&client));
        }
        client.connect().await;
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
        let old = self.get(name).await?;
        if let Some(store) = &self.store {
            store.save_client(&config)?;
        }
        let reconnect = !same_connection(&old.config, &config);
        let client = Arc::new(ManagedClient {
            config,
            connection: RwLock::new(Connection::Connecting),
        });
        if !reconnect {
            let mut connection = old.connection.write().await;
            *client.connection.write().await =
                std::mem::replace(&mut *connection, Connection::Connecting);
        }
        self.clients
            .write()
            .await
            .insert(name.to_string(), Arc::clone(&client));
        if reconnect {
            client.connect().await;
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
        drop(clients);
        let client = removed.ok_or_else(|| ManagerError::NotFound(name.to_string()))?;
        *client.connection.write().await = Connection::Failed("removed".into());
        Ok(())
    }

    /// Drops a client's session and connects it again.
    ///
    /// # Errors
    /// [`ManagerError::NotFound`] when there is no such client.
    pub async fn reconnect(&self, name: &str) -> Result<ClientStatus, ManagerError> {
        let client = self.get(name).await?;
        client.connect().await;
        Ok(client.status().await)
    }

    /// A client's configuration as written.
    ///
    /// # Errors
    /// [`ManagerError::NotFound`] when there is no such client.
    pub async fn config(&self, name: &str) -> Result<ClientConfig, ManagerError> {
        Ok(self.get(name).await?.config.clone())
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

    fn timeout(&self, config: &ClientConfig) -> Duration {
        Duration::from_secs(
            config
                .tool_execution_timeout
                .unwrap_or(self.settings.tool_execution_timeout),
        )
    }
}

#[async_trait]
impl ToolDispatcher for McpManager {
    async fn call(&self, client: &str, tool: &str, arguments: Value) -> Result<Value, ToolError> {
        let managed = self.clients.read().await.get(client).cloned();
        let Some(managed) = managed else {
            return Err(ToolError::NotFound(format!(
                "there is no MCP client named {client}"
            )));
        };
        if !tool_allowed(&managed.config, tool) {
            return Err(ToolError::Denied(format!(
                "{client}.{tool} is not allowed by the client's configuration"
            )));
        }
        let session = match &*managed.connection.read().await {
            Connection::Connected { session, tools } => {
                if !tools.iter().any(|t| t.name == tool) {
                    return Err(ToolError::NotFound(format!(
                        "{client} has no tool named {tool}"
                    )));
                }
                Arc::clone(session)
            }
            Connection::Connecting => {
                return Err(ToolError::Unavailable(format!(
                    "{client} is still connecting"
                )));
            }
            Connection::Failed(error) => {
                return Err(ToolError::Unavailable(format!(
                    "{client} is not connected: {error}"
                )));
            }
        };
        let arguments = match arguments {
            Value::Object(map) => map,
            _ => Default::default(),
        };
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let timeout = self.timeout(&managed.config);
        let result = tokio::time::timeout(timeout, session.call_tool(params))
            .await
            .map_err(|_| ToolError::Timeout(timeout))?
            .map_err(|error| service_error(client, error))?;
        let result = serde_json::to_value(&result).map_err(|e| {
            ToolError::Failed(format!("unreadable result from {client}.{tool}: {e}"))
        })?;
        tool_value(&result)
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
