//! The gateway: the one path by which a caller lists tools, calls one, or runs code.
//!
//! Every caller-facing entry point (`/v1/mcp/tool/execute`, `/v1/code/execute`, `/mcp`, the
//! stdio MCP server, `codemode run --config`) holds a [`Gateway`] and the caller's
//! [`Permit`], and nothing else that can reach a tool: the manager's call API is private to the
//! crate and asks for a `PermitChecked` that only `CallPath` below can make, after it checked
//! the permit. So a new endpoint cannot forget the check: skipping it does not compile.
//!
//! What happens to one call, in order: the name is resolved (`<client>-<tool>`, or a code-mode
//! meta-tool), the permit is checked on the host, the manager calls the upstream server, and the
//! call is recorded in the audit log (denied calls too). Calls a script makes take the same
//! path through `PermittedCalls`, the sandbox's dispatcher, with the script's execution id as
//! their parent. An observer of "a call finished" (the audit log today, metrics next) belongs in
//! `CallPath::call`, where every call passes exactly once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use rmcp::model::Tool;
use serde_json::Value;
use tracing::Instrument;

use crate::code_mode::analysis::ScriptAnalysis;
use crate::code_mode::answer::model_answer;
use crate::code_mode::meta::{self, MetaCall};
use crate::code_mode::{CodeMode, CodeRun, Stubs};
use crate::config::MAX_CLIENT_NAME_BYTES;
use crate::executor::{ErrorKind, ExecuteError, LimitOverrides, ToolDispatcher, ToolError};
use crate::mcp::supervisor::MAX_TOOL_NAME_BYTES;
use crate::mcp::tools::direct_tools;
use crate::mcp::{McpManager, ProgressSender, ToolAnswer};
use crate::observe::audit::{AuditLog, now_ms};
use crate::observe::metrics::Metrics;
use crate::policy::Permit;
use crate::policy::keys::sha256_hex;
use crate::store::{AuditOutcome, AuditRecord};

/// Proof that the caller's permit allowed a call: only this module can make one, and the
/// manager's call API asks for it, so a call that skips the permit does not compile.
pub(crate) struct PermitChecked(());

/// Why a call through the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The tool call failed, was refused, or named nothing.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// `executeToolCode` could not start its script.
    #[error(transparent)]
    Execute(#[from] ExecuteError),
}

/// Where a call comes from, for the audit log and for agent mode.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The request that asked for the call: the LLM request whose answer named it, or the chat
    /// request agent mode serves.
    pub parent: Option<String>,
    /// Agent mode: the model turn that asked for the call, from 1.
    pub iteration: Option<u32>,
    /// Agent mode running `executeToolCode` on its own: the only tools the script may reach.
    /// The script is still bound with every server the caller reaches, so a call to another
    /// tool is refused on the host (`PermissionError`) and audited as denied.
    pub script_tools: Option<HashSet<(String, String)>>,
}

/// Tools, calls and code runs for callers, each under the caller's permit.
pub struct Gateway {
    path: CallPath,
    code_mode: CodeMode,
}

impl Gateway {
    /// A gateway over `manager`'s tools, running scripts with `code_mode`, recording every call
    /// in `audit` when there is one.
    pub fn new(
        manager: Arc<McpManager>,
        code_mode: CodeMode,
        audit: Option<Arc<AuditLog>>,
    ) -> Self {
        Gateway {
            path: CallPath {
                manager,
                audit,
                metrics: Arc::new(Metrics::new()),
            },
            code_mode,
        }
    }

    /// Code mode: the stubs a caller reads.
    pub fn code_mode(&self) -> &CodeMode {
        &self.code_mode
    }

    /// The metrics of what passed through.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.path.metrics
    }

    /// The metrics in the Prometheus text format, with the gauges of this moment.
    pub async fn render_metrics(&self) -> String {
        let clients = self.path.manager.status().await;
        let sandbox = self.code_mode.executor().load();
        self.path.metrics.render(&clients, sandbox)
    }

    /// The tools a caller with `permit` is offered: its direct tools as `<client>-<tool>`, then
    /// the meta-tools when it reaches a code-mode client. The list behind `GET /v1/mcp/tools`
    /// and `/mcp`'s `tools/list`.
    pub async fn tools(&self, permit: &Permit) -> Vec<Tool> {
        let registry = self.path.manager.tools().await;
        let mut tools = direct_tools(&permit.view(registry));
        if self.code_mode.active(permit).await {
            tools.extend(meta::tools());
        }
        tools
    }

    /// Calls the tool a model named: `<client>-<tool>` or a code-mode meta-tool, with
    /// `arguments` (a JSON object); the tool's progress goes to `progress`. A meta-tool answers
    /// with text for the model.
    ///
    /// # Errors
    /// [`CallError::Tool`] for an unknown name, arguments of the wrong shape, a refused or
    /// failed call; [`CallError::Execute`] when `executeToolCode` cannot start its script.
    pub async fn call(
        &self,
        permit: &Permit,
        name: &str,
        arguments: Value,
        progress: Option<ProgressSender>,
    ) -> Result<ToolAnswer, CallError> {
        self.call_from(permit, name, arguments, progress, Origin::default())
            .await
    }

    /// [`call`](Self::call) made on behalf of `origin` (recorded with it; a script agent mode
    /// runs is narrowed by it).
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub async fn call_from(
        &self,
        permit: &Permit,
        name: &str,
        arguments: Value,
        progress: Option<ProgressSender>,
        origin: Origin,
    ) -> Result<ToolAnswer, CallError> {
        if meta::is_meta_tool(name) {
            let call = MetaCall::parse(name, arguments)?;
            let text = self.call_meta(permit, call, origin).await?;
            return Ok(ToolAnswer::Value(Value::String(text)));
        }
        let Some((client, tool)) = self.path.manager.resolve(name).await else {
            let shown: String = name.chars().take(MAX_TOOL_NAME_BYTES).collect();
            return Err(ToolError::NotFound(format!(
                "no tool named {shown}: tools are named <client>-<tool>"
            ))
            .into());
        };
        Ok(self
            .path
            .call(permit, &origin, &client, &tool, arguments, progress)
            .await?)
    }

    async fn call_meta(
        &self,
        permit: &Permit,
        call: MetaCall,
        origin: Origin,
    ) -> Result<String, CallError> {
        match call {
            MetaCall::ExecuteToolCode { code } => {
                let requested = LimitOverrides::default();
                let (run, stubs) = self.run(permit, &code, &requested, origin).await?;
                Ok(model_answer(&run.result, &stubs.catalog))
            }
            MetaCall::Stubs(query) => Ok(self.code_mode.answer(permit, query).await),
        }
    }

    /// Splits a model's tool name `<client>-<tool>` into its client and tool.
    pub async fn resolve(&self, name: &str) -> Option<(String, String)> {
        self.path.manager.resolve(name).await
    }

    /// Whether agent mode may run `client`'s `tool` for `permit` without asking: the client
    /// lists it in `tools_to_auto_execute` and the permit allows it.
    pub async fn auto_executes(&self, permit: &Permit, client: &str, tool: &str) -> bool {
        permit.allows(client, tool) && self.path.manager.auto_executes(client, tool).await
    }

    /// The most model turns of one agent-mode request.
    pub fn max_agent_depth(&self) -> u32 {
        self.path.manager.max_agent_depth()
    }

    /// The tools `code` can call with the servers `permit` reaches bound, known before it runs.
    ///
    /// # Errors
    /// [`ExecuteError`] when the analysis cannot start: code too large, the sandbox busy.
    pub async fn analyze(
        &self,
        permit: &Permit,
        code: &str,
    ) -> Result<ScriptAnalysis, ExecuteError> {
        self.code_mode.analyze(permit, code).await
    }

    /// Runs `code` with every server `permit` reaches bound, under the limits `requested` asks
    /// for (each absent field takes the configured default). Each call the script makes is
    /// checked against `permit` on the host and recorded with this run as its parent.
    ///
    /// # Errors
    /// [`ExecuteError`] when the run cannot start: limits outside the server's policy, code
    /// too large, the sandbox busy or broken.
    pub async fn run_code(
        &self,
        permit: &Permit,
        code: &str,
        requested: &LimitOverrides,
    ) -> Result<CodeRun, ExecuteError> {
        let origin = Origin::default();
        Ok(self.run(permit, code, requested, origin).await?.0)
    }

    /// Runs `code` for `origin`: its calls are recorded with the script's execution as their
    /// parent, or with agent mode's request and turn, and narrowed to `origin.script_tools`.
    async fn run(
        &self,
        permit: &Permit,
        code: &str,
        requested: &LimitOverrides,
        origin: Origin,
    ) -> Result<(CodeRun, Arc<Stubs>), ExecuteError> {
        let execution_id = new_id();
        let call_permit = match origin.script_tools {
            Some(tools) => permit.clone().only(tools),
            None => permit.clone(),
        };
        let calls = Arc::new(PermittedCalls {
            path: self.path.clone(),
            permit: call_permit,
            origin: Origin {
                parent: origin.parent.or_else(|| Some(execution_id.clone())),
                iteration: origin.iteration,
                script_tools: None,
            },
        });
        let span = tracing::info_span!(
            "execution",
            execution_id = %execution_id,
            calls = tracing::field::Empty,
            limit = tracing::field::Empty,
        );
        let (result, stubs) = self
            .code_mode
            .run(code, requested, permit, calls)
            .instrument(span.clone())
            .await?;
        span.record("calls", result.calls.len() as u64);
        if let Some(limit) = result.error.as_ref().and_then(|e| e.limit) {
            span.record("limit", limit.as_str());
        }
        self.path.metrics.execution(&result);
        let run = CodeRun {
            execution_id,
            result,
        };
        Ok((run, stubs))
    }

    /// The sandbox's dispatcher for scripts run outside [`run_code`](Self::run_code) (such as
    /// `codemode run --config`, with no bound servers): every call checked against `permit`
    /// and recorded.
    pub fn script_calls(&self, permit: Permit) -> Arc<dyn ToolDispatcher> {
        Arc::new(PermittedCalls {
            path: self.path.clone(),
            permit,
            origin: Origin::default(),
        })
    }
}

/// The permit check, the manager's call and the record of it: the only caller of the
/// manager's call API.
#[derive(Clone)]
struct CallPath {
    manager: Arc<McpManager>,
    audit: Option<Arc<AuditLog>>,
    metrics: Arc<Metrics>,
}

impl CallPath {
    /// Calls `client`'s `tool` if `permit` allows it, and records the call (with `origin`'s
    /// parent and turn); the answer is passed back as the tool gave it.
    async fn call(
        &self,
        permit: &Permit,
        origin: &Origin,
        client: &str,
        tool: &str,
        arguments: Value,
        progress: Option<ProgressSender>,
    ) -> Result<ToolAnswer, ToolError> {
        // A name longer than any codemode serves names nothing: refused before anything keeps
        // it (the audit log included), so a caller cannot make the host hold or store it.
        if client.len() > MAX_CLIENT_NAME_BYTES || tool.len() > MAX_TOOL_NAME_BYTES {
            return Err(ToolError::NotFound(format!(
                "no such tool: client names have at most {MAX_CLIENT_NAME_BYTES} bytes and tool \
                 names at most {MAX_TOOL_NAME_BYTES}"
            )));
        }
        let at_ms = now_ms();
        let started = Instant::now();
        // Measured before the call takes the arguments; only when someone records them.
        let arguments_json = self
            .audit
            .as_ref()
            .map(|_| serde_json::to_vec(&arguments).unwrap_or_default());
        let allowed = permit.allows(client, tool);
        let span = tracing::info_span!(
            "tool_call",
            client,
            tool,
            outcome = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let answer = if allowed {
            self.manager
                .call_tool(
                    PermitChecked(()),
                    permit.caller().as_deref(),
                    client,
                    tool,
                    arguments,
                    progress,
                )
                .instrument(span.clone())
                .await
        } else {
            Err(denied(permit, client, tool))
        };
        let outcome = match (&answer, allowed) {
            (_, false) => AuditOutcome::Denied,
            (Ok(answer), _) if !answer.is_error() => AuditOutcome::Ok,
            _ => AuditOutcome::Error,
        };
        // Names count as labels only when the call reached the tool (it answered, failed or
        // timed out): any other refusal may carry a caller's made-up names, counted as `other`.
        let known = allowed
            && matches!(
                answer,
                Ok(_) | Err(ToolError::Failed(_) | ToolError::Timeout(_))
            );
        let seconds = started.elapsed().as_secs_f64();
        span.record("outcome", outcome.as_str());
        span.record("duration_ms", seconds * 1e3);
        self.metrics
            .tool_call(client, tool, known, outcome, seconds);
        if let (Some(audit), Some(json)) = (&self.audit, arguments_json) {
            audit.record(AuditRecord {
                at_ms,
                vk: permit.key().map(str::to_string),
                client: client.to_string(),
                tool: tool.to_string(),
                arg_bytes: json.len() as u64,
                arg_hash: sha256_hex(&json),
                outcome,
                error_type: match &answer {
                    Err(error) => Some(error.kind()),
                    Ok(answer) if answer.is_error() => Some(ErrorKind::ToolError),
                    Ok(_) => None,
                },
                latency_ms: started.elapsed().as_secs_f64() * 1e3,
                execution_id: new_id(),
                parent_execution_id: origin.parent.clone(),
                repeats: 1,
                iteration: origin.iteration,
            });
        }
        answer
    }
}

fn denied(permit: &Permit, client: &str, tool: &str) -> ToolError {
    ToolError::Denied(match permit.key() {
        Some(key) => format!("{client}.{tool} is not allowed for virtual key {key}"),
        None => format!("{client}.{tool} is not allowed for this request"),
    })
}

/// The tools one caller may use, as the sandbox's dispatcher: a script's calls.
struct PermittedCalls {
    path: CallPath,
    permit: Permit,
    /// Where these calls come from: the script's execution, or agent mode's request.
    origin: Origin,
}

#[async_trait]
impl ToolDispatcher for PermittedCalls {
    async fn call(&self, client: &str, tool: &str, arguments: Value) -> Result<Value, ToolError> {
        self.path
            .call(&self.permit, &self.origin, client, tool, arguments, None)
            .await?
            .into_value()
    }
}

/// A fresh random id (UUID v4).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
