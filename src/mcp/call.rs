//! The call path: one tool call to one client, within its time limit, and what it answered.
//!
//! `McpManager::call_tool` is crate-private: the [`Gateway`](crate::gateway::Gateway) is its
//! only caller, after the caller's permit allowed the call. It checks the client's own
//! configuration (`tools_to_execute`, `tools_to_skip`), takes the session's link under the
//! client's lock and releases it before awaiting the server. An MCP answer is passed back as
//! the server sent it ([`ToolAnswer::Mcp`]); converting it for a script or a model is the
//! caller's choice ([`ToolAnswer::into_value`], [`ToolAnswer::into_result`]). Upstream
//! progress is forwarded under codemode's own token; a lost connection wakes the client's
//! health check at once.

use std::time::Duration;

use futures::StreamExt;
use rmcp::ServiceError;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, ContentBlock,
    ProgressNotificationParam, ServerResult,
};
use rmcp::service::PeerRequestOptions;
use serde_json::Value;

use std::sync::Arc;

use tokio::sync::Notify;

use rmcp::handler::client::progress::ProgressDispatcher;

use super::McpManager;
use super::auth::OPERATOR;
use super::callers::CallerSession;
use super::client::{Connection, Link, ManagedClient};
use super::result::tool_value;
use super::supervisor;
use super::transport::{self, ConnectError, Session, Upstream};
use crate::config::{AuthType, ClientConfig};
use crate::executor::ToolError;
use crate::gateway::PermitChecked;

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
    /// Callers reach tools through the [`Gateway`](crate::gateway::Gateway): only it can make
    /// the [`PermitChecked`] this asks for, after it checked the caller's permit.
    ///
    /// # Errors
    /// A [`ToolError`]: unknown client or tool, not allowed, not connected, timed out, or the
    /// call failed on the way.
    pub(crate) async fn call_tool(
        &self,
        _permitted: PermitChecked,
        caller: Option<&str>,
        client: &str,
        tool: &str,
        arguments: Value,
        progress: Option<ProgressSender>,
    ) -> Result<ToolAnswer, ToolError> {
        let Some(managed) = self.client(client).await else {
            return Err(ToolError::NotFound(format!(
                "there is no MCP client named {client}"
            )));
        };
        let (link, timeout, config) = managed.with_connection(|config, connection| {
            let link = usable_link(config, connection, tool)?;
            Ok::<_, ToolError>((link, self.timeout(config), config.clone()))
        })?;
        // The operator's session lists the tools; a per-user client's calls go over the
        // caller's own.
        let subject = match config.auth_type {
            AuthType::PerUserOauth => caller.ok_or_else(|| {
                ToolError::Denied(format!(
                    "{client} authorizes each caller on its own (per-user OAuth): call it with \
                     a virtual key"
                ))
            })?,
            _ => OPERATOR,
        };
        let call = async {
            let (link, dispatcher) = match config.auth_type {
                AuthType::PerUserOauth => {
                    let caller = managed.caller_session(&config, subject).await?;
                    (Link::Mcp(caller.session), caller.progress)
                }
                _ => (link, managed.progress.clone()),
            };
            let call = Call {
                managed: &managed,
                config: &config,
                subject,
                dispatcher: &dispatcher,
            };
            match link {
                Link::Mcp(session) => call
                    .mcp(&session, tool, arguments, progress)
                    .await
                    .map(ToolAnswer::Mcp),
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

impl ManagedClient {
    /// The caller's own session with a per-user OAuth client's server: pooled, else opened
    /// with the caller's token. Without a token nothing is connected: the caller is sent to
    /// authorize.
    async fn caller_session(
        &self,
        config: &ClientConfig,
        caller: &str,
    ) -> Result<CallerSession, ToolError> {
        if let Some(session) = self.callers.get(caller) {
            return Ok(session);
        }
        let client = &config.name;
        let unavailable = |error: &dyn std::fmt::Display| {
            ToolError::Unavailable(format!("{client} could not be reached for you: {error}"))
        };
        let authorized = self
            .oauth
            .authorized_client(config, caller)
            .await
            .map_err(|e| unavailable(&e))?;
        let Some(auth) = authorized else {
            return Err(self.caller_authorization(config, caller, None, false).await);
        };
        let progress = ProgressDispatcher::new();
        let handler = Upstream::new(Arc::new(Notify::new()), progress.clone());
        match transport::connect(config, handler, Some(auth)).await {
            Ok(connected) => {
                let session = CallerSession {
                    session: Arc::new(connected.session),
                    progress,
                };
                self.callers.put(caller, session.clone());
                Ok(session)
            }
            Err(ConnectError::AuthRequired {
                challenge,
                insufficient_scope,
            }) => Err(self
                .caller_authorization(config, caller, Some(&challenge), insufficient_scope)
                .await),
            Err(error) => Err(unavailable(&error)),
        }
    }

    /// Prepares `caller`'s authorization of a per-user client and says where to give it.
    async fn caller_authorization(
        &self,
        config: &ClientConfig,
        caller: &str,
        challenge: Option<&str>,
        step_up: bool,
    ) -> ToolError {
        match self.oauth.start(config, caller, challenge, step_up).await {
            Ok(authorize_url) => ToolError::AuthRequired {
                client: config.name.clone(),
                authorize_url,
            },
            Err(error) => ToolError::Unavailable(format!(
                "{} needs your authorization, which cannot start: {error}",
                config.name
            )),
        }
    }

    /// The server refused a call for want of authorization or scope: asks for it, the caller's
    /// own for a per-user client (and says where to give it), else the operator's (and says
    /// that it waits for the operator).
    async fn refused_call(
        &self,
        config: &ClientConfig,
        subject: &str,
        challenge: &str,
        step_up: bool,
    ) -> ToolError {
        if subject != OPERATOR {
            self.callers.remove(subject);
            return self
                .caller_authorization(config, subject, Some(challenge), step_up)
                .await;
        }
        let reason = supervisor::ask_authorization(self, config, challenge, step_up)
            .await
            .err();
        ToolError::Unavailable(operator_must_authorize(&config.name, reason.as_deref()))
    }
}

/// What a caller is told of a client that waits for its operator's authorization.
fn operator_must_authorize(client: &str, reason: Option<&str>) -> String {
    let mut message = format!(
        "{client} waits for its operator to authorize it (the link is in GET /api/mcp/clients)"
    );
    if let Some(reason) = reason {
        message.push_str(": ");
        message.push_str(reason);
    }
    message
}

/// The link to call `tool` over, when `config` allows the tool and the client is connected
/// and offers it; else why not.
fn usable_link(
    config: &ClientConfig,
    connection: &Connection,
    tool: &str,
) -> Result<Link, ToolError> {
    let client = &config.name;
    if !config.allows_tool(tool) {
        return Err(ToolError::Denied(format!(
            "{client}.{tool} is not allowed by the client's configuration"
        )));
    }
    match connection {
        // The operator's authorization link is the operator's: whoever opens it signs the
        // client, for every caller, into their own account. Callers only learn that it waits.
        Connection::Authorizing { .. } => Err(ToolError::Unavailable(operator_must_authorize(
            client, None,
        ))),
        Connection::NeedsReauth { reason, .. } => Err(ToolError::Unavailable(
            operator_must_authorize(client, Some(reason)),
        )),
        Connection::Connected { link, tools, .. } => {
            if !tools.iter().any(|t| t.name == tool) {
                return Err(ToolError::NotFound(format!(
                    "{client} has no tool named {tool}"
                )));
            }
            Ok(link.clone())
        }
        Connection::Connecting => Err(ToolError::Unavailable(format!(
            "{client} is still connecting"
        ))),
        Connection::Disconnected => Err(ToolError::Unavailable(format!(
            "{client} is disconnected; codemode is reconnecting it"
        ))),
        Connection::Failed(error) => Err(ToolError::Unavailable(format!(
            "{client} is not connected: {error}"
        ))),
    }
}

/// How long progress is still forwarded after a call's answer (in the background).
const PROGRESS_GRACE: Duration = Duration::from_millis(5);

/// Where a call's progress notifications are sent.
pub type ProgressSender = tokio::sync::mpsc::UnboundedSender<ProgressNotificationParam>;

/// One call's context: the client, on whose behalf (`subject`), and where the session's
/// progress notifications arrive.
struct Call<'a> {
    managed: &'a ManagedClient,
    config: &'a ClientConfig,
    subject: &'a str,
    dispatcher: &'a ProgressDispatcher,
}

impl Call<'_> {
    /// Calls `tool` over `session`, forwarding its progress to `progress`. A refusal for want
    /// of authorization or scope asks for it.
    async fn mcp(
        &self,
        session: &Session,
        tool: &str,
        arguments: Value,
        progress: Option<ProgressSender>,
    ) -> Result<CallToolResult, ToolError> {
        let (managed, config, subject) = (self.managed, self.config, self.subject);
        let client = config.name.as_str();
        let arguments = match arguments {
            Value::Object(map) => map,
            _ => Default::default(),
        };
        let mut params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        transport::trace::stamp(&mut params);
        let answer = match progress {
            None => session.call_tool(params).await,
            Some(sink) => self.reporting(session, params, sink).await,
        };
        let error = match answer {
            Ok(result) => {
                if config.auth_type.is_oauth() {
                    managed.oauth.succeeded(client, subject);
                }
                return Ok(result);
            }
            Err(error) => error,
        };
        if config.auth_type.is_oauth()
            && let Some(ConnectError::AuthRequired {
                challenge,
                insufficient_scope,
            }) = transport::request_refusal(&error)
        {
            return Err(managed
                .refused_call(config, subject, &challenge, insufficient_scope)
                .await);
        }
        let error = service_error(client, error);
        if matches!(error, ToolError::Unavailable(_)) {
            if subject == OPERATOR {
                managed.check_now.notify_one();
            } else {
                managed.callers.remove(subject);
            }
        }
        Err(error)
    }

    /// Sends a `tools/call` and forwards the progress notifications rmcp's own token collects,
    /// until the answer arrives.
    async fn reporting(
        &self,
        session: &Session,
        params: CallToolRequestParams,
        sink: ProgressSender,
    ) -> Result<CallToolResult, ServiceError> {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = session
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await?;
        let mut updates = self
            .dispatcher
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
            while let Ok(Some(update)) = tokio::time::timeout(PROGRESS_GRACE, updates.next()).await
            {
                let _ = sink.send(update);
            }
        });
        match answer {
            ServerResult::CallToolResult(result) => Ok(result),
            _ => Err(ServiceError::UnexpectedResponse),
        }
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
