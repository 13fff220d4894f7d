//! Supervision: the task that connects one client, retries transient failures, health-checks
//! the session and reconnects when it drops.
//!
//! One task per client (`ManagedClient::supervise` starts or restarts it). Failures are
//! retried by the configured [`RetryPolicy`](crate::config::RetryPolicy) when
//! [`ConnectError::is_transient`] says so; a permanent one (command not found, 401, 403, 404)
//! ends the task until an API reconnect starts it again. A connected client is checked every
//! interval, or at once when a call saw its connection drop or the server said its tools
//! changed: each check re-lists the tools, so the list follows upstream changes.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::Tool;
use tokio::sync::oneshot;

use super::client::{Connection, Link, ManagedClient};
use super::transport::{ConnectError, Session, Upstream, connect};
use crate::config::ToolManagerConfig;

/// The longest tool name codemode serves; a server's longer names are skipped, so a longer
/// name names no tool.
pub const MAX_TOOL_NAME_BYTES: usize = 128;

/// How long a health check may take before the connection counts as lost.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects `client`, retrying transient failures, then health-checks it every interval and
/// reconnects when it drops. Ends when the retries are used up or a failure is permanent.
/// `first_attempt` is told when the first attempt has finished, whatever its outcome.
pub(crate) async fn supervise(
    client: Arc<ManagedClient>,
    settings: ToolManagerConfig,
    first_attempt: oneshot::Sender<()>,
) {
    if let Some(server) = &client.in_process {
        let tools = valid_tools(&client.config().name, server.definitions());
        let link = Link::InProcess(Arc::clone(server));
        client.set(Connection::Connected {
            link,
            tools,
            pid: None,
        });
        let _ = first_attempt.send(());
        return;
    }
    let mut first_attempt = Some(first_attempt);
    let interval = Duration::from_millis(settings.health_check_interval_ms.max(10));
    loop {
        let connected = connect_with_retries(&client, &settings, &mut first_attempt).await;
        let Some(connected) = connected else { return };
        let name = client.config().name.clone();
        let tools = valid_tools(&name, connected.tools);
        tracing::info!(client = %name, tools = tools.len(), "connected");
        let session = Arc::new(connected.session);
        client.reset_failures();
        client.set(Connection::Connected {
            link: Link::Mcp(Arc::clone(&session)),
            tools,
            pid: connected.pid,
        });
        if let Some(done) = first_attempt.take() {
            let _ = done.send(());
        }
        watch_health(&client, &session, interval).await;
        tracing::warn!(client = %name, "connection lost; reconnecting");
        client.set(Connection::Disconnected);
    }
}

/// Attempts to connect until one attempt succeeds, a failure is permanent, or the retries are
/// used up (then `None`).
async fn connect_with_retries(
    client: &Arc<ManagedClient>,
    settings: &ToolManagerConfig,
    first_attempt: &mut Option<oneshot::Sender<()>>,
) -> Option<super::transport::Connected> {
    let policy = settings.connect_retry;
    let mut attempt = 0;
    loop {
        attempt += 1;
        client.set(Connection::Connecting);
        let config = client.config();
        let handler = Upstream::new(Arc::clone(&client.check_now), client.progress.clone());
        let error: ConnectError = match connect(&config, handler).await {
            Ok(connected) => return Some(connected),
            Err(error) => error,
        };
        client.note_failure();
        let retry = error.is_transient() && attempt < policy.max_tries.max(1);
        tracing::warn!(client = %config.name, %error, attempt, retry, "connection failed");
        client.set(Connection::Failed(error.to_string()));
        if let Some(done) = first_attempt.take() {
            let _ = done.send(());
        }
        if !retry {
            return None;
        }
        tokio::time::sleep(policy.backoff(attempt)).await;
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
            Ok(Ok(tools)) => client.update_tools(valid_tools(&client.config().name, tools)),
            _ => return,
        }
    }
}

/// Drops upstream tools whose names cannot be addressed safely, saying why.
fn valid_tools(client: &str, tools: Vec<Tool>) -> Vec<Tool> {
    tools
        .into_iter()
        .filter(|tool| {
            let name = tool.name.as_ref();
            let valid = !name.is_empty()
                && name.len() <= MAX_TOOL_NAME_BYTES
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
