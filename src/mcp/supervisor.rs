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

use rmcp::transport::AuthClient;

use super::auth::{OAuthError, OPERATOR};
use super::client::{Connection, Link, ManagedClient};
use super::transport::{ConnectError, Session, Upstream, connect};
use crate::config::{ClientConfig, ToolManagerConfig};

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
        let attempt_result = match oauth_client(client, &config).await {
            Ok(auth) => connect(&config, handler, auth).await,
            Err(error) => Err(error),
        };
        let error: ConnectError = match attempt_result {
            Ok(connected) => return Some(connected),
            Err(ConnectError::AuthRequired {
                challenge,
                insufficient_scope,
            }) => {
                // The outcome is the client's state now; nobody else is waiting for it.
                let _ = ask_authorization(client, &config, &challenge, insufficient_scope).await;
                if let Some(done) = first_attempt.take() {
                    let _ = done.send(());
                }
                return None;
            }
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

/// The HTTP client of an OAuth client's connection (with the operator's token, if any);
/// `None` for a client that does not use OAuth.
async fn oauth_client(
    client: &ManagedClient,
    config: &ClientConfig,
) -> Result<Option<AuthClient<reqwest::Client>>, ConnectError> {
    if !config.auth_type.is_oauth() {
        return Ok(None);
    }
    Ok(Some(client.oauth.http_client(config, OPERATOR).await?))
}

/// The server refused for want of the operator's authorization (or of scope): prepares one and
/// leaves the client waiting for it, or, when codemode's own token was refused, needing it
/// again. Nothing is retried until the operator authorizes.
pub(crate) async fn ask_authorization(
    client: &ManagedClient,
    config: &ClientConfig,
    challenge: &str,
    step_up: bool,
) -> Result<String, String> {
    let had_token = client
        .oauth
        .has_token(&config.name, OPERATOR)
        .await
        .unwrap_or(false);
    let started = client
        .oauth
        .start(config, OPERATOR, Some(challenge), step_up)
        .await;
    let connection = match started {
        Ok(authorize_url) if had_token && !step_up => Connection::NeedsReauth {
            reason: "the server refused codemode's token and it could not be refreshed; \
                     authorize again"
                .into(),
            authorize_url: Some(authorize_url),
        },
        Ok(authorize_url) => Connection::Authorizing { authorize_url },
        Err(error @ OAuthError::StepUpLimit { .. }) => Connection::NeedsReauth {
            reason: error.to_string(),
            authorize_url: None,
        },
        Err(error) => Connection::Failed(error.to_string()),
    };
    let outcome = match &connection {
        Connection::Authorizing { authorize_url }
        | Connection::NeedsReauth {
            authorize_url: Some(authorize_url),
            ..
        } => Ok(authorize_url.clone()),
        Connection::NeedsReauth { reason, .. } | Connection::Failed(reason) => Err(reason.clone()),
        _ => Err("the server needs OAuth authorization".into()),
    };
    tracing::warn!(client = %config.name, "the server needs OAuth authorization");
    client.set(connection);
    outcome
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
