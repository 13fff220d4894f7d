//! The four meta-tools, with Bifrost's names and parameters: `listToolFiles`, `readToolFile`,
//! `getToolDocs`, `executeToolCode`.
//!
//! Their definitions are short on purpose: they are what a model pays for in every request
//! instead of every tool's schema. Answers are text for the model. A request the model can
//! correct (an unknown file, a tool that does not exist, a failing script) is answered, with
//! what exists instead, rather than refused; only arguments of the wrong shape are errors.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};
use serde::Deserialize;
use serde_json::{Value, json};

use super::CodeMode;
use super::answer::model_answer;
use crate::executor::{ExecuteError, LimitOverrides};
use crate::mcp::registry::openai_function;
use crate::policy::Permit;

/// `listToolFiles`.
pub const LIST_TOOL_FILES: &str = "listToolFiles";
/// `readToolFile`.
pub const READ_TOOL_FILE: &str = "readToolFile";
/// `getToolDocs`.
pub const GET_TOOL_DOCS: &str = "getToolDocs";
/// `executeToolCode`.
pub const EXECUTE_TOOL_CODE: &str = "executeToolCode";

/// Whether `name` is one of the meta-tools.
pub fn is_meta_tool(name: &str) -> bool {
    [
        LIST_TOOL_FILES,
        READ_TOOL_FILE,
        GET_TOOL_DOCS,
        EXECUTE_TOOL_CODE,
    ]
    .contains(&name)
}

/// The meta-tools as MCP tools.
pub fn tools() -> Vec<Tool> {
    let tool = |name: &str, description: &str, properties: Value, required: &[&str]| {
        let mut schema = JsonObject::new();
        schema.insert("type".into(), json!("object"));
        schema.insert("properties".into(), properties);
        if !required.is_empty() {
            schema.insert("required".into(), json!(required));
        }
        Tool::new(name.to_string(), description.to_string(), Arc::new(schema))
    };
    vec![
        tool(
            LIST_TOOL_FILES,
            "List the stub files of the tool servers.",
            json!({}),
            &[],
        ),
        tool(
            READ_TOOL_FILE,
            "Read a stub file: each tool's signature and summary.",
            json!({
                "fileName": {"type": "string"},
                "startLine": {"type": "integer"},
                "endLine": {"type": "integer"},
            }),
            &["fileName"],
        ),
        tool(
            GET_TOOL_DOCS,
            "A tool's full docs: parameters, return shape, example.",
            json!({"server": {"type": "string"}, "tool": {"type": "string"}}),
            &["server", "tool"],
        ),
        tool(
            EXECUTE_TOOL_CODE,
            "Run Python calling tools as server.tool(arg=...). Set result to return a value; \
             print() output is shown. Parallel calls: await asyncio.gather(server.tool_async(...), ...).",
            json!({"code": {"type": "string"}}),
            &["code"],
        ),
    ]
}

/// The meta-tools as OpenAI function definitions.
pub fn definitions() -> Vec<Value> {
    tools().iter().map(openai_function).collect()
}

/// A meta-tool call that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The arguments do not have the tool's shape.
    #[error("arguments of {tool}: {reason}")]
    InvalidArguments {
        /// The meta-tool.
        tool: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Not a meta-tool.
    #[error("{0} is not a code-mode tool")]
    Unknown(String),
    /// The script could not be run at all.
    #[error(transparent)]
    Execute(#[from] ExecuteError),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReadArguments {
    file_name: String,
    start_line: Option<usize>,
    end_line: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocsArguments {
    server: String,
    tool: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteArguments {
    code: String,
}

fn arguments<T: serde::de::DeserializeOwned>(
    tool: &'static str,
    arguments: Value,
) -> Result<T, MetaError> {
    let arguments = if arguments.is_null() {
        json!({})
    } else {
        arguments
    };
    serde_json::from_value(arguments).map_err(|e| MetaError::InvalidArguments {
        tool,
        reason: e.to_string(),
    })
}

impl CodeMode {
    /// Runs meta-tool `name` with `args` (a JSON object) for a caller with `permit`; returns the
    /// answer for the model.
    ///
    /// # Errors
    /// [`MetaError`] for arguments of the wrong shape, an unknown name, or a script that could
    /// not be started.
    pub async fn call_meta(
        &self,
        name: &str,
        args: Value,
        permit: &Permit,
    ) -> Result<String, MetaError> {
        match name {
            LIST_TOOL_FILES => {
                let _: serde::de::IgnoredAny = arguments(LIST_TOOL_FILES, args)?;
                Ok(self.stubs(permit).await.catalog.tree())
            }
            READ_TOOL_FILE => {
                let a: ReadArguments = arguments(READ_TOOL_FILE, args)?;
                let stubs = self.stubs(permit).await;
                Ok(stubs
                    .catalog
                    .read(&a.file_name, a.start_line, a.end_line)
                    .unwrap_or_else(|e| format!("error: {e}")))
            }
            GET_TOOL_DOCS => {
                let a: DocsArguments = arguments(GET_TOOL_DOCS, args)?;
                let stubs = self.stubs(permit).await;
                Ok(stubs
                    .catalog
                    .docs(&a.server, &a.tool)
                    .unwrap_or_else(|e| format!("error: {e}")))
            }
            EXECUTE_TOOL_CODE => {
                let a: ExecuteArguments = arguments(EXECUTE_TOOL_CODE, args)?;
                let (run, stubs) = self
                    .run(&a.code, &LimitOverrides::default(), permit)
                    .await?;
                Ok(model_answer(&run.result, &stubs.catalog))
            }
            other => Err(MetaError::Unknown(other.to_string())),
        }
    }
}
