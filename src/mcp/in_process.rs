//! In-process tools: a Rust program that embeds codemode registers tools with a name, a
//! description, a JSON Schema and an async handler, and they join the registry as one client
//! (`connection_type: "inprocess"`), callable from scripts and over HTTP like any MCP server's.
//!
//! A call goes straight to the handler: no JSON-RPC, no serialisation beyond what the caller
//! already holds.

use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::model::{JsonObject, Tool};
use serde_json::Value;

use crate::executor::ToolError;

type Handler = dyn Fn(Value) -> BoxFuture<'static, Result<Value, ToolError>> + Send + Sync;

/// One tool implemented by the embedding program.
#[derive(Clone)]
pub struct InProcessTool {
    tool: Tool,
    handler: Arc<Handler>,
}

impl InProcessTool {
    /// A tool named `name` taking arguments described by `input_schema` (a JSON Schema object),
    /// answered by `handler`. The handler receives the arguments object as the caller sent it;
    /// what it returns is what a script receives.
    ///
    /// A schema that is not a JSON object is replaced by `{"type": "object"}`.
    pub fn new<F, Fut>(name: &str, description: &str, input_schema: Value, handler: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        let schema: JsonObject = match input_schema {
            Value::Object(map) => map,
            _ => JsonObject::from_iter([("type".to_string(), Value::from("object"))]),
        };
        InProcessTool {
            tool: Tool::new(name.to_string(), description.to_string(), Arc::new(schema)),
            handler: Arc::new(move |arguments| Box::pin(handler(arguments))),
        }
    }

    /// The tool's definition, as an MCP server would list it.
    pub fn definition(&self) -> &Tool {
        &self.tool
    }
}

/// The tools of one in-process client.
pub struct InProcessServer {
    tools: Vec<InProcessTool>,
}

impl InProcessServer {
    /// A server answering with `tools`.
    pub fn new(tools: Vec<InProcessTool>) -> Self {
        InProcessServer { tools }
    }

    /// The tools' definitions.
    pub fn definitions(&self) -> Vec<Tool> {
        self.tools.iter().map(|t| t.tool.clone()).collect()
    }

    /// Runs `tool` with `arguments`.
    ///
    /// # Errors
    /// [`ToolError::NotFound`] for an unknown tool, else whatever the handler returns.
    pub async fn call(&self, tool: &str, arguments: Value) -> Result<Value, ToolError> {
        let handler = self
            .tools
            .iter()
            .find(|t| t.tool.name == tool)
            .map(|t| Arc::clone(&t.handler))
            .ok_or_else(|| ToolError::NotFound(format!("there is no in-process tool {tool}")))?;
        handler(arguments).await
    }
}
