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
use crate::executor::ToolError;
use crate::mcp::tools::openai_function;
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

/// A meta-tool call with its arguments parsed: a question about the stubs, or a script to run.
#[derive(Debug)]
pub enum MetaCall {
    /// `listToolFiles`, `readToolFile` or `getToolDocs`: answered from the caller's stubs.
    Stubs(StubQuery),
    /// `executeToolCode`.
    ExecuteToolCode {
        /// The script.
        code: String,
    },
}

/// A question about the stubs.
#[derive(Debug)]
pub enum StubQuery {
    /// `listToolFiles`.
    ListToolFiles,
    /// `readToolFile`.
    ReadToolFile {
        /// The file, as the model named it.
        file_name: String,
        /// The first line to show (1-based).
        start_line: Option<usize>,
        /// The last line to show.
        end_line: Option<usize>,
    },
    /// `getToolDocs`.
    GetToolDocs {
        /// The server.
        server: String,
        /// The tool.
        tool: String,
    },
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
) -> Result<T, ToolError> {
    let arguments = if arguments.is_null() {
        json!({})
    } else {
        arguments
    };
    serde_json::from_value(arguments)
        .map_err(|e| ToolError::InvalidArguments(format!("arguments of {tool}: {e}")))
}

impl MetaCall {
    /// Meta-tool `name` called with `args` (a JSON object).
    ///
    /// # Errors
    /// [`ToolError::InvalidArguments`] for arguments of the wrong shape,
    /// [`ToolError::NotFound`] when `name` is not a meta-tool.
    pub fn parse(name: &str, args: Value) -> Result<MetaCall, ToolError> {
        Ok(match name {
            LIST_TOOL_FILES => {
                let _: serde::de::IgnoredAny = arguments(LIST_TOOL_FILES, args)?;
                MetaCall::Stubs(StubQuery::ListToolFiles)
            }
            READ_TOOL_FILE => {
                let a: ReadArguments = arguments(READ_TOOL_FILE, args)?;
                MetaCall::Stubs(StubQuery::ReadToolFile {
                    file_name: a.file_name,
                    start_line: a.start_line,
                    end_line: a.end_line,
                })
            }
            GET_TOOL_DOCS => {
                let a: DocsArguments = arguments(GET_TOOL_DOCS, args)?;
                MetaCall::Stubs(StubQuery::GetToolDocs {
                    server: a.server,
                    tool: a.tool,
                })
            }
            EXECUTE_TOOL_CODE => {
                let a: ExecuteArguments = arguments(EXECUTE_TOOL_CODE, args)?;
                MetaCall::ExecuteToolCode { code: a.code }
            }
            other => {
                return Err(ToolError::NotFound(format!(
                    "{other} is not a code-mode tool"
                )));
            }
        })
    }
}

impl CodeMode {
    /// The answer for the model to `query` about the stubs `permit` allows.
    pub async fn answer(&self, permit: &Permit, query: StubQuery) -> String {
        let stubs = self.stubs(permit).await;
        let catalog = &stubs.catalog;
        match query {
            StubQuery::ListToolFiles => catalog.tree(),
            StubQuery::ReadToolFile {
                file_name,
                start_line,
                end_line,
            } => catalog
                .read(&file_name, start_line, end_line)
                .unwrap_or_else(|e| format!("error: {e}")),
            StubQuery::GetToolDocs { server, tool } => catalog
                .docs(&server, &tool)
                .unwrap_or_else(|e| format!("error: {e}")),
        }
    }
}
