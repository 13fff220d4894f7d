//! Agent mode: inside one chat request, the gateway runs the tool calls it may run on its own and
//! asks the model again, so one request can take several model turns.
//!
//! After each answer the model's tool calls are split: a call is *auto-executable* when it names
//! an MCP tool this request was given (a tool the caller brought is the caller's to run), the
//! client lists it in `tools_to_auto_execute`, and the caller's permit allows it. The code-mode
//! meta-tools that only read stubs always are; `executeToolCode` is only when the guest's
//! analysis of the script knows every tool it can reach and all of them are, and then it runs
//! under a permit narrowed to those tools. Everything else goes back to the app, which approves
//! it through `/v1/mcp/tool/execute` and continues the conversation.
//!
//! - [`complete`]: the loop for a complete answer (Bifrost's semantics).
//! - [`stream`]: the same loop inside one event stream.
//!
//! Calls run in parallel within a turn, each recorded in the audit log with the chat request as
//! its parent and the turn as its iteration. `max_agent_depth` bounds the rounds of tool
//! execution: a request makes at most `1 + max_agent_depth` model calls.

pub mod complete;
pub mod stream;

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::code_mode::meta::{self, EXECUTE_TOOL_CODE, MetaCall};
use crate::executor::ToolError;
use crate::gateway::{CallError, Origin};
use crate::llm::LlmError;
use crate::llm::route::{self, Answer, ChatRequest, McpAuthRequired, Served};
use crate::policy::Permit;

/// One chat request in agent mode.
pub struct Agent {
    app: Arc<App>,
    /// The caller's permit, narrowed by the request's filters.
    permit: Permit,
    /// The MCP tools added to this request, by name: only these may run on their own.
    injected: HashSet<String>,
    /// The chat request's id: the parent of every call it runs.
    request_id: String,
    /// Most rounds of tool execution.
    max_rounds: u32,
}

/// A tool call as the model wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The call's id, which its result message names.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, a JSON text as OpenAI sends them.
    pub arguments: String,
}

impl ToolCall {
    /// The tool calls of an assistant message (OpenAI shape).
    pub fn all_of(message: &Value) -> Vec<ToolCall> {
        message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|call| ToolCall {
                id: call["id"].as_str().unwrap_or_default().to_string(),
                name: call["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                arguments: match &call["function"]["arguments"] {
                    Value::String(text) => text.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                },
            })
            .collect()
    }

    /// The call in OpenAI's shape.
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "type": "function",
               "function": {"name": self.name, "arguments": self.arguments}})
    }

    fn arguments_json(&self) -> Result<Value, String> {
        if self.arguments.trim().is_empty() {
            return Ok(json!({}));
        }
        match serde_json::from_str::<Value>(&self.arguments) {
            Ok(value @ Value::Object(_)) => Ok(value),
            Ok(_) => Err(format!(
                "the arguments of {} must be a JSON object",
                self.name
            )),
            Err(e) => Err(format!(
                "the arguments of {} are not valid JSON: {e}",
                self.name
            )),
        }
    }
}

/// A call that may run without the app: for `executeToolCode`, the only tools its script may
/// reach (`None` for any other tool).
type AutoCall = (ToolCall, Option<HashSet<(String, String)>>);

/// A call that ran, and what it gave the model.
#[derive(Debug, Clone)]
pub struct Executed {
    /// The call.
    pub call: ToolCall,
    /// Its output as text: the tool's value (strings as they are, anything else as JSON), or
    /// `Error: <why>`.
    pub output: String,
    /// When the tool's server needs the caller's OAuth authorization first: where to give it.
    pub auth_required: Option<McpAuthRequired>,
}

/// The first authorization the calls of `executed` asked for, if any.
pub(crate) fn auth_required(executed: &[Executed]) -> Option<McpAuthRequired> {
    executed.iter().find_map(|e| e.auth_required.clone())
}

impl Agent {
    /// Agent mode for one request of a caller holding `permit`, which was given the MCP tools
    /// named in `injected`.
    pub fn new(
        app: Arc<App>,
        permit: Permit,
        injected: HashSet<String>,
        request_id: String,
    ) -> Agent {
        let max_rounds = app.gateway.max_agent_depth();
        Agent {
            app,
            permit,
            injected,
            request_id,
            max_rounds,
        }
    }

    /// Splits `calls` into those that run on their own and those that go back to the app, both
    /// in the model's order.
    async fn split(&self, calls: Vec<ToolCall>) -> (Vec<AutoCall>, Vec<ToolCall>) {
        let verdicts = futures::future::join_all(calls.iter().map(|c| self.verdict(c))).await;
        let mut auto = Vec::new();
        let mut pending = Vec::new();
        for (call, verdict) in calls.into_iter().zip(verdicts) {
            match verdict {
                Some(script_tools) => auto.push((call, script_tools)),
                None => pending.push(call),
            }
        }
        (auto, pending)
    }

    /// `Some` when `call` may run on its own (with the tools a script is narrowed to), `None`
    /// when it goes back to the app.
    async fn verdict(&self, call: &ToolCall) -> Option<Option<HashSet<(String, String)>>> {
        if !self.injected.contains(&call.name) {
            return None;
        }
        if call.name == EXECUTE_TOOL_CODE {
            return self.script_verdict(call).await.map(Some);
        }
        if meta::is_meta_tool(&call.name) {
            // listToolFiles, readToolFile, getToolDocs: they only read the caller's stubs.
            return Some(None);
        }
        let gateway = &self.app.gateway;
        let (client, tool) = gateway.resolve(&call.name).await?;
        gateway
            .auto_executes(&self.permit, &client, &tool)
            .await
            .then_some(None)
    }

    /// `executeToolCode` runs on its own only if every tool its script can reach may: those
    /// tools, or `None`.
    async fn script_verdict(&self, call: &ToolCall) -> Option<HashSet<(String, String)>> {
        let parsed = call
            .arguments_json()
            .ok()
            .and_then(|arguments| MetaCall::parse(&call.name, arguments).ok());
        let Some(MetaCall::ExecuteToolCode { code }) = parsed else {
            // Malformed arguments: running it only answers the model with the error.
            return Some(HashSet::new());
        };
        let gateway = &self.app.gateway;
        let analysis = gateway.analyze(&self.permit, &code).await.ok()?;
        let mut allowed = HashSet::new();
        for tool in analysis.known_tools()? {
            if !gateway
                .auto_executes(&self.permit, &tool.client, &tool.tool)
                .await
            {
                return None;
            }
            allowed.insert((tool.client.clone(), tool.tool.clone()));
        }
        Some(allowed)
    }

    /// Runs `calls` in parallel for model turn `iteration`; their outputs, in order.
    async fn run(&self, calls: Vec<AutoCall>, iteration: u32) -> Vec<Executed> {
        let runs = calls.into_iter().map(|(call, script_tools)| async move {
            let (output, auth_required) = self.run_one(&call, script_tools, iteration).await;
            Executed {
                call,
                output,
                auth_required,
            }
        });
        futures::future::join_all(runs).await
    }

    async fn run_one(
        &self,
        call: &ToolCall,
        script_tools: Option<HashSet<(String, String)>>,
        iteration: u32,
    ) -> (String, Option<McpAuthRequired>) {
        let arguments = match call.arguments_json() {
            Ok(arguments) => arguments,
            Err(why) => return (format!("Error: {why}"), None),
        };
        let origin = Origin {
            parent: Some(self.request_id.clone()),
            iteration: Some(iteration),
            script_tools,
        };
        let answer = self
            .app
            .gateway
            .call_from(&self.permit, &call.name, arguments, None, origin)
            .await;
        let auth_required = match &answer {
            Err(CallError::Tool(
                error @ ToolError::AuthRequired {
                    client,
                    authorize_url,
                },
            )) => Some(McpAuthRequired {
                kind: "oauth",
                authorize_url: authorize_url.clone(),
                mcp_client_name: client.clone(),
                message: error.to_string(),
            }),
            _ => None,
        };
        let output = match answer
            .map_err(|e| e.to_string())
            .and_then(|answer| answer.into_value().map_err(|e| e.to_string()))
        {
            Ok(Value::String(text)) => text,
            Ok(value) => value.to_string(),
            Err(why) => format!("Error: {why}"),
        };
        (output, auth_required)
    }

    /// Asks the model for the next turn of `request`, streamed or not.
    async fn ask(&self, request: &ChatRequest, stream: bool) -> Result<Answer, (LlmError, Served)> {
        let turn = ChatRequest {
            body: request.body.clone(),
            targets: request.targets.clone(),
            stream,
        };
        route::route(&self.app.providers, turn).await
    }
}

/// Appends a turn to the conversation: the assistant's message with the calls that ran, then
/// one `role: "tool"` message per result.
fn append_turn(body: &mut Map<String, Value>, content: &Value, executed: &[Executed]) {
    let messages = body
        .entry("messages")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !messages.is_array() {
        *messages = Value::Array(Vec::new());
    }
    let Some(messages) = messages.as_array_mut() else {
        return;
    };
    let calls: Vec<Value> = executed.iter().map(|e| e.call.to_json()).collect();
    messages.push(json!({"role": "assistant", "content": content, "tool_calls": calls}));
    for executed in executed {
        messages.push(json!({"role": "tool", "tool_call_id": executed.call.id,
                             "content": executed.output}));
    }
}

/// Token counts summed over every model call of a request.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    seen: bool,
    prompt: u64,
    completion: u64,
}

impl Usage {
    fn add(&mut self, usage: &Value) {
        if let (Some(prompt), Some(completion)) = (
            usage["prompt_tokens"].as_u64(),
            usage["completion_tokens"].as_u64(),
        ) {
            self.seen = true;
            self.prompt += prompt;
            self.completion += completion;
        }
    }

    /// `usage` with the sums in place of its counts (its other fields kept).
    fn write(&self, usage: &mut Value) {
        if !self.seen {
            return;
        }
        if !usage.is_object() {
            *usage = json!({});
        }
        usage["prompt_tokens"] = json!(self.prompt);
        usage["completion_tokens"] = json!(self.completion);
        usage["total_tokens"] = json!(self.prompt + self.completion);
    }
}
