//! [`PermittedCalls`]: the one path every tool call takes, from HTTP, from a script, from the
//! MCP server. The permit is checked on the host before the manager is asked, so a denied call
//! never reaches the upstream server, whatever the guest sends; then the call is recorded.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;

use super::Permit;
use super::keys::sha256_hex;
use crate::audit::{AuditLog, now_ms};
use crate::executor::{ToolDispatcher, ToolError};
use crate::mcp::{McpManager, ProgressSender, ToolAnswer};
use crate::store::AuditRecord;

/// The manager's tools as one caller may use them.
pub struct PermittedCalls {
    manager: Arc<McpManager>,
    permit: Permit,
    audit: Option<Arc<AuditLog>>,
    /// The script execution these calls come from, if any.
    parent: Option<String>,
}

impl PermittedCalls {
    /// Calls through `manager` under `permit`, recorded in `audit`; `parent` is the id of the
    /// script execution making them.
    pub fn new(
        manager: Arc<McpManager>,
        permit: Permit,
        audit: Option<Arc<AuditLog>>,
        parent: Option<String>,
    ) -> Self {
        PermittedCalls {
            manager,
            permit,
            audit,
            parent,
        }
    }

    fn denied(&self, client: &str, tool: &str) -> ToolError {
        ToolError::Denied(match self.permit.key() {
            Some(key) => format!("{client}.{tool} is not allowed for virtual key {key}"),
            None => format!("{client}.{tool} is not allowed for this request"),
        })
    }
}

impl PermittedCalls {
    /// Calls `client`'s `tool` if the permit allows it, and records the call; the answer is
    /// passed back as the tool gave it.
    ///
    /// # Errors
    /// [`ToolError::Denied`] when the permit refuses the call (the manager is not asked), else
    /// what the manager returns.
    pub async fn call_tool(
        &self,
        client: &str,
        tool: &str,
        arguments: Value,
    ) -> Result<ToolAnswer, ToolError> {
        self.call_tool_reporting(client, tool, arguments, None)
            .await
    }

    /// [`call_tool`](Self::call_tool), with the tool's progress sent to `progress`.
    ///
    /// # Errors
    /// As [`call_tool`](Self::call_tool).
    pub async fn call_tool_reporting(
        &self,
        client: &str,
        tool: &str,
        arguments: Value,
        progress: Option<ProgressSender>,
    ) -> Result<ToolAnswer, ToolError> {
        let at_ms = now_ms();
        let started = Instant::now();
        // Measured before the call takes the arguments; only when someone records them.
        let arguments_json = self
            .audit
            .as_ref()
            .map(|_| serde_json::to_vec(&arguments).unwrap_or_default());
        let allowed = self.permit.allows(client, tool);
        let answer = if allowed {
            self.manager
                .call_tool_reporting(client, tool, arguments, progress)
                .await
        } else {
            Err(self.denied(client, tool))
        };
        if let (Some(audit), Some(json)) = (&self.audit, arguments_json) {
            audit.record(AuditRecord {
                at_ms,
                vk: self.permit.key().map(str::to_string),
                client: client.to_string(),
                tool: tool.to_string(),
                arg_bytes: json.len() as u64,
                arg_hash: sha256_hex(&json),
                outcome: match (&answer, allowed) {
                    (_, false) => "denied",
                    (Ok(answer), _) if !answer.is_error() => "ok",
                    _ => "error",
                }
                .into(),
                error_type: match &answer {
                    Err(error) => Some(error.python_type().to_string()),
                    Ok(answer) if answer.is_error() => Some("ToolError".to_string()),
                    Ok(_) => None,
                },
                latency_ms: started.elapsed().as_secs_f64() * 1e3,
                execution_id: new_id(),
                parent_execution_id: self.parent.clone(),
            });
        }
        answer
    }
}

#[async_trait]
impl ToolDispatcher for PermittedCalls {
    async fn call(&self, client: &str, tool: &str, arguments: Value) -> Result<Value, ToolError> {
        self.call_tool(client, tool, arguments)
            .await?
            .into_value(client, tool)
    }
}

/// A fresh random id (UUID v4).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
