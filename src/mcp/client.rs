//! One upstream client: its configuration as written, its connection, and its supervising task.
//!
//! Everything that changes about a client lives in one `Shared` behind one `std::sync::Mutex`:
//! the configuration, the `Connection` (an explicit state: connecting, connected with its
//! session and tools, disconnected, failed with the reason), the count of failed attempts and
//! the handle of the supervising task. A std mutex is right here: no code awaits while holding
//! it, every critical section is a few field reads or one assignment, and a call clones the
//! session's `Arc` and releases the lock before it awaits the server, so calls run
//! concurrently and a slow server never blocks the registry.
//!
//! Every state change is published on the manager's `Changes`: subscribers hear a
//! [`ClientEvent`], and the generation counter moves so derived views (code-mode stubs) rebuild.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rmcp::handler::client::progress::ProgressDispatcher;
use rmcp::model::Tool;
use serde::Serialize;
use tokio::sync::{Notify, broadcast, oneshot};
use tokio::task::AbortHandle;

use super::auth::OAuth;
use super::callers::CallerSessions;
use super::in_process::InProcessServer;
use super::supervisor;
use super::transport::Session;
use crate::config::{AuthType, ClientConfig, ToolManagerConfig};

/// A client's connection state, as the management API reports it (by [`ClientState::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Connecting (or reconnecting).
    Connecting,
    /// Connected; its tools are listed.
    Connected,
    /// Was connected; the session ended.
    Disconnected,
    /// Could not connect; `last_error` says why.
    Error,
    /// Waits for the operator to open `authorize_url` (OAuth); nothing is retried until then.
    PendingAuthorization,
    /// The server refused codemode's authorization and it could not be renewed; `last_error`
    /// says why, `authorize_url` (when there is one) starts again.
    NeedsReauth,
}

impl ClientState {
    /// The name the API, the metrics and the pages show.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Connecting => "connecting",
            ClientState::Connected => "connected",
            ClientState::Disconnected => "disconnected",
            ClientState::Error => "error",
            ClientState::PendingAuthorization => "pending_authorization",
            ClientState::NeedsReauth => "needs_reauth",
        }
    }
}

impl Serialize for ClientState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
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
    /// Names of every tool its server offers, the ones it may not run included.
    pub offered_tools: Vec<String>,
    /// Connection attempts that failed since it was added or last connected.
    pub failed_attempts: u32,
    /// The process id of a stdio client's server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Where the operator authorizes an OAuth client that waits for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// Per-user OAuth: the callers' sessions open now (each reused for that caller's calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_sessions: Option<usize>,
}

/// A change of one client, as [`McpManager::subscribe`](super::McpManager::subscribe) reports
/// it: a new state, or (with the state still `connected`) a change of the tools it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEvent {
    /// The client.
    pub client: String,
    /// Its new state.
    pub state: ClientState,
}

/// Where a client stands with its server.
pub(crate) enum Connection {
    Connecting,
    Connected {
        link: Link,
        tools: Vec<Tool>,
        pid: Option<u32>,
    },
    Disconnected,
    Failed(String),
    /// An OAuth client waiting for the operator's authorization.
    Authorizing {
        authorize_url: String,
    },
    /// An OAuth client whose authorization was refused and could not be renewed.
    NeedsReauth {
        reason: String,
        authorize_url: Option<String>,
    },
}

impl Connection {
    fn state(&self) -> ClientState {
        match self {
            Connection::Connecting => ClientState::Connecting,
            Connection::Connected { .. } => ClientState::Connected,
            Connection::Disconnected => ClientState::Disconnected,
            Connection::Failed(_) => ClientState::Error,
            Connection::Authorizing { .. } => ClientState::PendingAuthorization,
            Connection::NeedsReauth { .. } => ClientState::NeedsReauth,
        }
    }
}

/// What a call goes through: an MCP session, or the handlers of an in-process client.
#[derive(Clone)]
pub(crate) enum Link {
    Mcp(Arc<Session>),
    InProcess(Arc<InProcessServer>),
}

/// Where the clients report changes: subscribers, and a counter that moves on every change of
/// any client's state or tools (so derived views, such as code-mode stubs, know when to rebuild).
pub(crate) struct Changes {
    events: broadcast::Sender<ClientEvent>,
    generation: AtomicU64,
}

impl Changes {
    pub(crate) fn new() -> Arc<Changes> {
        Arc::new(Changes {
            events: broadcast::channel(256).0,
            generation: AtomicU64::new(0),
        })
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.events.subscribe()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Moves the generation without an event (a client was added or removed).
    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    fn publish(&self, client: &str, state: ClientState) {
        self.bump();
        // Nobody listening is fine.
        let _ = self.events.send(ClientEvent {
            client: client.to_string(),
            state,
        });
    }
}

/// The part of a client that changes, under one lock.
struct Shared {
    config: Arc<ClientConfig>,
    connection: Connection,
    /// Connection attempts that failed since the client was added or last connected.
    failed_attempts: u32,
    supervisor: Option<AbortHandle>,
}

/// One upstream client.
pub(crate) struct ManagedClient {
    shared: Mutex<Shared>,
    /// Wakes the health check, which re-lists the tools, at once: a call saw the connection
    /// drop, or the server sent `notifications/tools/list_changed`.
    pub(crate) check_now: Arc<Notify>,
    /// The tools of an in-process client, which has no connection to supervise.
    pub(crate) in_process: Option<Arc<InProcessServer>>,
    /// Where the server's progress notifications go, by token.
    pub(crate) progress: ProgressDispatcher,
    /// OAuth flows and tokens, for a client whose `auth_type` asks for them.
    pub(crate) oauth: Arc<OAuth>,
    /// Per-user OAuth: each caller's own session with the server.
    pub(crate) callers: CallerSessions,
    changes: Arc<Changes>,
}

impl ManagedClient {
    pub(crate) fn new(
        config: ClientConfig,
        in_process: Option<InProcessServer>,
        oauth: Arc<OAuth>,
        changes: Arc<Changes>,
    ) -> Arc<Self> {
        Arc::new(ManagedClient {
            shared: Mutex::new(Shared {
                config: Arc::new(config),
                connection: Connection::Connecting,
                failed_attempts: 0,
                supervisor: None,
            }),
            check_now: Arc::new(Notify::new()),
            in_process: in_process.map(Arc::new),
            progress: ProgressDispatcher::new(),
            oauth,
            callers: CallerSessions::default(),
            changes,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Every critical section leaves `Shared` consistent (one assignment at a time), so a
        // panic elsewhere while it was held cannot have broken it.
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.lock().config)
    }

    pub(crate) fn status(&self) -> ClientStatus {
        let shared = self.lock();
        let config = &shared.config;
        let authorize_url = match &shared.connection {
            Connection::Authorizing { authorize_url } => Some(authorize_url.clone()),
            Connection::NeedsReauth { authorize_url, .. } => authorize_url.clone(),
            _ => None,
        };
        let (last_error, offered_tools, pid) = match &shared.connection {
            Connection::Connected { tools, pid, .. } => {
                let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
                (None, names, *pid)
            }
            Connection::Failed(error) | Connection::NeedsReauth { reason: error, .. } => {
                (Some(error.clone()), Vec::new(), None)
            }
            Connection::Connecting | Connection::Disconnected | Connection::Authorizing { .. } => {
                (None, Vec::new(), None)
            }
        };
        let tools = offered_tools
            .iter()
            .filter(|n| config.allows_tool(n))
            .cloned()
            .collect();
        ClientStatus {
            name: config.name.clone(),
            config: config.redacted(),
            state: shared.connection.state(),
            last_error,
            tools,
            offered_tools,
            failed_attempts: shared.failed_attempts,
            pid,
            authorize_url,
            caller_sessions: (config.auth_type == AuthType::PerUserOauth)
                .then(|| self.callers.len()),
        }
    }

    /// The tools the client's configuration lets run, when it is connected.
    pub(crate) fn allowed_tools(&self) -> Option<(Arc<ClientConfig>, Vec<Tool>)> {
        let shared = self.lock();
        let Connection::Connected { tools, .. } = &shared.connection else {
            return None;
        };
        let tools = tools
            .iter()
            .filter(|t| shared.config.allows_tool(&t.name))
            .cloned()
            .collect();
        Some((Arc::clone(&shared.config), tools))
    }

    /// What a call needs, taken under the lock: the configuration, and the link when the
    /// client is connected (else the connection, to say why not).
    pub(crate) fn with_connection<T>(
        &self,
        read: impl FnOnce(&ClientConfig, &Connection) -> T,
    ) -> T {
        let shared = self.lock();
        read(&shared.config, &shared.connection)
    }

    pub(crate) fn set(&self, connection: Connection) {
        let state = connection.state();
        let name = {
            let mut shared = self.lock();
            shared.connection = connection;
            shared.config.name.clone()
        };
        self.changes.publish(&name, state);
    }

    /// Replaces the connected client's tools with `tools`; publishes when they changed.
    pub(crate) fn update_tools(&self, new: Vec<Tool>) {
        let name = {
            let mut shared = self.lock();
            match &mut shared.connection {
                Connection::Connected { tools, .. } if *tools != new => *tools = new,
                _ => return,
            }
            shared.config.name.clone()
        };
        self.changes.publish(&name, ClientState::Connected);
    }

    /// Replaces the configuration; answers whether the server must be reached anew (anything
    /// but the tool lists changed).
    pub(crate) fn replace_config(&self, config: ClientConfig) -> bool {
        let (reconnect, connected, name) = {
            let mut shared = self.lock();
            let reconnect = !shared.config.same_connection(&config);
            shared.config = Arc::new(config);
            let connected = matches!(shared.connection, Connection::Connected { .. });
            (reconnect, connected, shared.config.name.clone())
        };
        if !reconnect && connected {
            // The offered tools may have changed.
            self.changes.publish(&name, ClientState::Connected);
        }
        reconnect
    }

    pub(crate) fn note_failure(&self) {
        self.lock().failed_attempts += 1;
    }

    pub(crate) fn reset_failures(&self) {
        self.lock().failed_attempts = 0;
    }

    /// Starts (or restarts) the task that connects this client and keeps it connected; returns
    /// once the first connection attempt has finished.
    pub(crate) async fn supervise(self: &Arc<Self>, settings: &ToolManagerConfig) {
        self.stop();
        let (first_attempt, attempted) = oneshot::channel();
        let task = tokio::spawn(supervisor::supervise(
            Arc::clone(self),
            settings.clone(),
            first_attempt,
        ));
        self.lock().supervisor = Some(task.abort_handle());
        let _ = attempted.await;
    }

    /// Stops the supervising task, if any.
    pub(crate) fn stop(&self) {
        if let Some(task) = self.lock().supervisor.take() {
            task.abort();
        }
    }

    /// Whether the client is connected.
    pub(crate) fn is_connected(&self) -> bool {
        matches!(self.lock().connection, Connection::Connected { .. })
    }

    /// Stops the supervising task and drops the session (a stdio child is stopped with it).
    pub(crate) fn close(&self) {
        self.stop();
        self.callers.clear();
        // Dropped after the lock is released: ending a session may take a moment.
        let _ended = std::mem::replace(&mut self.lock().connection, Connection::Disconnected);
    }
}
