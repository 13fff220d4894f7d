//! codemode as an MCP server: `/mcp` over streamable HTTP, and `codemode mcp` over stdio.
//!
//! [`McpServer`] is one rmcp `ServerHandler` for both. It lists the caller's direct tools as
//! `<client>-<tool>` (with their full definitions) and the four code-mode meta-tools when the
//! caller reaches a code-mode client; `tools/call` goes through the same permit and audit path
//! as every other call and passes the upstream result through as received (every content type,
//! `structuredContent`, `isError`). A refused or failed call is an `isError` result whose text
//! says why. Connected clients get `notifications/tools/list_changed` whenever the registry
//! changes. A call's progress is passed through (the upstream server reports under codemode's
//! token, the caller hears it under its own); cancelling a call drops it, and rmcp cancels the
//! upstream request in turn.
//!
//! Over HTTP the caller is identified per request from the same headers as the rest of `/v1`
//! (the route rejects a missing or bad key with 401 before the MCP layer); over stdio the
//! permit is fixed when the process starts (`--vk`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::Value;

use super::caller::Caller;
use crate::app::App;
use crate::mcp::ProgressSender;
use crate::policy::Permit;

/// How codemode introduces itself to MCP clients.
const INSTRUCTIONS: &str = "codemode gateway. Tools are named <server>-<tool>. With code-mode \
servers, list stub files with listToolFiles, read one with readToolFile, and run one Python \
script calling many tools with executeToolCode.";

/// The MCP server over codemode's gateway.
#[derive(Clone)]
pub struct McpServer {
    app: Arc<App>,
    /// The permit of every request (stdio); `None`: the one `require_key` put on each HTTP
    /// request.
    fixed: Option<Permit>,
}

impl McpServer {
    /// A server whose every request has `permit` (for stdio).
    pub fn with_permit(app: Arc<App>, permit: Permit) -> Self {
        McpServer {
            app,
            fixed: Some(permit),
        }
    }

    fn permit(&self, context: &RequestContext<RoleServer>) -> Result<Permit, McpError> {
        if let Some(permit) = &self.fixed {
            return Ok(permit.clone());
        }
        // `require_key` authenticated the HTTP request and left its permit on it.
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Permit>())
            .cloned()
            .ok_or_else(|| McpError::internal_error("no caller for this call", None))
    }

    async fn call(
        &self,
        permit: &Permit,
        name: &str,
        arguments: Value,
        progress: Option<ProgressSender>,
    ) -> CallToolResult {
        match self
            .app
            .gateway
            .call(permit, name, arguments, progress)
            .await
        {
            Ok(answer) => answer.into_result(),
            Err(error) => failure(&error.to_string()),
        }
    }
}

fn failure(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.to_string())])
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("codemode", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let permit = self.permit(&context)?;
        Ok(ListToolsResult::with_all_items(
            self.app.gateway.tools(&permit).await,
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let permit = self.permit(&context)?;
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        // Upstream progress arrives under codemode's token; the caller hears it under its own.
        // Late updates travel on the session's stream once the call's stream has closed.
        let progress = context.meta.get_progress_token().map(|token| {
            let (sender, mut updates) =
                tokio::sync::mpsc::unbounded_channel::<ProgressNotificationParam>();
            let peer = context.peer.clone();
            tokio::spawn(async move {
                while let Some(mut update) = updates.recv().await {
                    update.progress_token = token.clone();
                    if peer.notify_progress(update).await.is_err() {
                        return;
                    }
                }
            });
            sender
        });
        let result = tokio::select! {
            result = self.call(&permit, &request.name, arguments, progress) => result,
            () = context.ct.cancelled() => failure("cancelled"),
        };
        Ok(CallToolResponse::Complete(result))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // Tell this client whenever the registry changes, until it goes away.
        let mut events = self.app.manager.subscribe();
        let peer = context.peer;
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
                if peer.notify_tool_list_changed().await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The `/mcp` service: streamable HTTP with sessions, allowed `Host`s and `Origin`s from
/// `allowed_hosts` and `allowed_origins` (DNS-rebinding protection: by default only localhost
/// names are accepted).
pub fn service(
    state: Arc<App>,
    allowed_hosts: &[String],
    allowed_origins: &[String],
) -> StreamableHttpService<McpServer, LocalSessionManager> {
    // Answers as SSE streams (not plain JSON) so that a call's progress reaches the caller
    // before its result.
    let mut config = StreamableHttpServerConfig::default();
    if !allowed_hosts.is_empty() {
        config = config.with_allowed_hosts(allowed_hosts.to_vec());
    }
    if !allowed_origins.is_empty() {
        config = config.with_allowed_origins(allowed_origins.to_vec());
    }
    StreamableHttpService::new(
        move || {
            Ok(McpServer {
                app: Arc::clone(&state),
                fixed: None,
            })
        },
        LocalSessionManager::default().into(),
        config,
    )
}

/// Refuses a request to `/mcp` without a valid virtual key (when keys exist) with 401, as the
/// rest of `/v1` does, before the MCP layer sees it; otherwise leaves the caller's permit on
/// the request for the handler.
pub async fn require_key(State(state): State<Arc<App>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match <Caller as axum::extract::FromRequestParts<Arc<App>>>::from_request_parts(
        &mut parts, &state,
    )
    .await
    {
        Ok(Caller(permit)) => {
            parts.extensions.insert(permit);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => error.into_response(),
    }
}
