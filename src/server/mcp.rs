//! codemode as an MCP server: `/mcp` over streamable HTTP, and `codemode mcp` over stdio.
//!
//! [`Gateway`] is one rmcp `ServerHandler` for both. It lists the caller's direct tools as
//! `<client>-<tool>` (with their full definitions) and the four code-mode meta-tools when the
//! caller reaches a code-mode client; `tools/call` goes through the same permit and audit path
//! as every other call and passes the upstream result through as received (every content type,
//! `structuredContent`, `isError`). A refused or failed call is an `isError` result whose text
//! says why. Connected clients get `notifications/tools/list_changed` whenever the registry
//! changes. Cancelling a call drops it, and rmcp cancels the upstream request in turn.
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
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::Value;

use super::AppState;
use super::caller::{Caller, permit_from_headers};
use crate::codemode::meta;
use crate::policy::{Permit, PermittedCalls};

/// How codemode introduces itself to MCP clients.
const INSTRUCTIONS: &str = "codemode gateway. Tools are named <server>-<tool>. With code-mode \
servers, list stub files with listToolFiles, read one with readToolFile, and run one Python \
script calling many tools with executeToolCode.";

/// The MCP server over codemode's state.
#[derive(Clone)]
pub struct Gateway {
    state: Arc<AppState>,
    /// The permit of every request (stdio); `None`: read from each HTTP request's headers.
    fixed: Option<Permit>,
}

impl Gateway {
    /// A gateway whose every request has `permit` (for stdio).
    pub fn with_permit(state: Arc<AppState>, permit: Permit) -> Self {
        Gateway {
            state,
            fixed: Some(permit),
        }
    }

    fn permit(&self, context: &RequestContext<RoleServer>) -> Result<Permit, McpError> {
        if let Some(permit) = &self.fixed {
            return Ok(permit.clone());
        }
        let parts = context
            .extensions
            .get::<http::request::Parts>()
            .ok_or_else(|| McpError::internal_error("no HTTP request for this call", None))?;
        permit_from_headers(&self.state, &parts.headers)
            .map_err(|e| McpError::invalid_request(e.to_string(), None))
    }

    async fn tools(&self, permit: &Permit) -> Vec<Tool> {
        let registry = permit.view(self.state.manager.tools().await);
        let mut tools: Vec<Tool> = registry
            .iter()
            .filter(|client| !client.code_mode)
            .flat_map(|client| {
                client.tools.iter().map(|tool| {
                    let mut tool = tool.clone();
                    tool.name = format!("{}-{}", client.client, tool.name).into();
                    tool
                })
            })
            .collect();
        if self.state.codemode.active(permit).await {
            tools.extend(meta::definitions().iter().filter_map(meta_tool));
        }
        tools
    }

    async fn call(&self, permit: &Permit, name: &str, arguments: Value) -> CallToolResult {
        if meta::is_meta_tool(name) {
            return match self.state.codemode.call_meta(name, arguments, permit).await {
                Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
                Err(error) => failure(&error.to_string()),
            };
        }
        let Some((client, tool)) = self.state.manager.resolve(name).await else {
            return failure(&format!(
                "no tool named {name}: tools are named <server>-<tool>"
            ));
        };
        let calls = PermittedCalls::new(
            Arc::clone(&self.state.manager),
            permit.clone(),
            self.state.audit.clone(),
            None,
        );
        match calls.call_tool(&client, &tool, arguments).await {
            Ok(answer) => answer.into_result(),
            Err(error) => failure(&error.to_string()),
        }
    }
}

/// An OpenAI meta-tool definition as an MCP tool.
fn meta_tool(definition: &Value) -> Option<Tool> {
    let function = definition.get("function")?;
    let schema = function.get("parameters")?.as_object()?.clone();
    Some(Tool::new(
        function.get("name")?.as_str()?.to_string(),
        function.get("description")?.as_str()?.to_string(),
        Arc::new(schema),
    ))
}

fn failure(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.to_string())])
}

impl ServerHandler for Gateway {
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
        Ok(ListToolsResult::with_all_items(self.tools(&permit).await))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let permit = self.permit(&context)?;
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let result = tokio::select! {
            result = self.call(&permit, &request.name, arguments) => result,
            () = context.ct.cancelled() => failure("cancelled"),
        };
        Ok(CallToolResponse::Complete(result))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // Tell this client whenever the registry changes, until it goes away.
        let mut events = self.state.manager.subscribe();
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
    state: Arc<AppState>,
    allowed_hosts: &[String],
    allowed_origins: &[String],
) -> StreamableHttpService<Gateway, LocalSessionManager> {
    // Answers as plain JSON rather than a one-event SSE stream: a call costs half as much, and
    // server-initiated messages (list_changed) still flow on the session's GET stream.
    let mut config = StreamableHttpServerConfig::default().with_json_response(true);
    if !allowed_hosts.is_empty() {
        config = config.with_allowed_hosts(allowed_hosts.to_vec());
    }
    if !allowed_origins.is_empty() {
        config = config.with_allowed_origins(allowed_origins.to_vec());
    }
    StreamableHttpService::new(
        move || {
            Ok(Gateway {
                state: Arc::clone(&state),
                fixed: None,
            })
        },
        LocalSessionManager::default().into(),
        config,
    )
}

/// Refuses a request to `/mcp` without a valid virtual key (when keys exist) with 401, as the
/// rest of `/v1` does, before the MCP layer sees it.
pub async fn require_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    match <Caller as axum::extract::FromRequestParts<Arc<AppState>>>::from_request_parts(
        &mut parts, &state,
    )
    .await
    {
        Ok(_) => next.run(Request::from_parts(parts, body)).await,
        Err(error) => error.into_response(),
    }
}
