//! Tools as the manager offers them: one entry per connected client ([`ClientTools`], what
//! [`McpManager::tools`](super::McpManager::tools) answers, with full definitions: input and
//! output schema, annotations, title), and the direct-tool and OpenAI shapes derived from it,
//! where a tool is addressed as `<client>-<tool>`.

use rmcp::model::Tool;
use serde::Serialize;
use serde_json::{Value, json};

/// The tools one connected client may run (after `tools_to_execute` and `tools_to_skip`).
#[derive(Debug, Clone, Serialize)]
pub struct ClientTools {
    /// The client's name.
    pub client: String,
    /// Whether its tools are served as code-mode stubs instead of direct tools.
    pub code_mode: bool,
    /// Its tools, as the server listed them.
    pub tools: Vec<Tool>,
}

/// The direct tools of `clients`, named `<client>-<tool>`: every tool of every client that is
/// not a code-mode client (those are reached through the code-mode meta-tools).
pub fn direct_tools(clients: &[ClientTools]) -> Vec<Tool> {
    clients
        .iter()
        .filter(|c| !c.code_mode)
        .flat_map(|c| {
            c.tools.iter().map(|tool| {
                let mut tool = tool.clone();
                tool.name = format!("{}-{}", c.client, tool.name).into();
                tool
            })
        })
        .collect()
}

/// `tool` as an OpenAI function definition, under its own name.
pub fn openai_function(tool: &Tool) -> Value {
    let mut description = tool.description.as_deref().unwrap_or_default().to_string();
    if description.is_empty() {
        description = tool.title.clone().unwrap_or_default();
    }
    json!({
        "type": "function",
        "function": {
            "name": tool.name,
            "description": description,
            "parameters": Value::Object(tool.input_schema.as_ref().clone()),
        }
    })
}

/// The direct tools of `clients` as OpenAI function definitions.
pub fn openai_tools(clients: &[ClientTools]) -> Vec<Value> {
    direct_tools(clients).iter().map(openai_function).collect()
}
