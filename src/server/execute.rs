//! `POST /v1/mcp/tool/execute`: run one tool call given in OpenAI's chat or responses shape;
//! `GET /v1/mcp/tools`: the tools a caller can send to a model, as OpenAI function definitions.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Body;
use super::caller::{BodyFilters, Caller};
use super::error::ApiError;
use crate::app::App;
use crate::gateway::Origin;
use crate::mcp::tools::openai_function;
use crate::policy::Permit;

/// `?format=chat` (the default) or `?format=responses`.
#[derive(Deserialize)]
pub struct FormatQuery {
    format: Option<String>,
}

/// A chat-completions tool call: `{id, type: "function", function: {name, arguments}}`.
#[derive(Deserialize)]
struct ChatToolCall {
    id: String,
    #[serde(rename = "type", default)]
    _kind: Option<String>,
    function: FunctionCall,
    #[serde(flatten)]
    filters: BodyFilters,
}

#[derive(Deserialize)]
struct FunctionCall {
    name: String,
    #[serde(default)]
    arguments: Value,
}

/// A responses-API tool call: `{type: "function_call", call_id, name, arguments}`.
#[derive(Deserialize)]
struct ResponsesToolCall {
    #[serde(rename = "type", default)]
    _kind: Option<String>,
    call_id: String,
    name: String,
    #[serde(default)]
    arguments: Value,
    #[serde(flatten)]
    filters: BodyFilters,
}

/// `GET /v1/mcp/tools`: `{"tools": [OpenAI function definitions]}`: the direct tools, named
/// `<client>-<tool>`, then the code-mode meta-tools when a code-mode client is connected.
pub async fn tools(State(state): State<Arc<App>>, Caller(permit): Caller) -> Json<Value> {
    let tools: Vec<Value> = state
        .gateway
        .tools(&permit)
        .await
        .iter()
        .map(openai_function)
        .collect();
    Json(json!({ "tools": tools }))
}

/// The handler: parse the call in the requested shape, run it, answer in the same shape.
pub async fn execute(
    State(state): State<Arc<App>>,
    Caller(permit): Caller,
    Query(query): Query<FormatQuery>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    match query.format.as_deref().unwrap_or("chat") {
        "chat" => {
            let call: ChatToolCall = parse(&body)?;
            let permit = call.filters.narrow(permit);
            // The LLM request whose answer asked for this call, when codemode served it.
            let parent = state
                .audit
                .as_ref()
                .and_then(|audit| audit.llm_request_for(&call.id));
            let output = run(
                &state,
                &permit,
                &call.function.name,
                call.function.arguments,
                parent.as_deref(),
            )
            .await?;
            Ok(Json(
                json!({"role": "tool", "content": output, "tool_call_id": call.id}),
            ))
        }
        "responses" => {
            let call: ResponsesToolCall = parse(&body)?;
            let permit = call.filters.narrow(permit);
            let parent = state
                .audit
                .as_ref()
                .and_then(|audit| audit.llm_request_for(&call.call_id));
            let output = run(
                &state,
                &permit,
                &call.name,
                call.arguments,
                parent.as_deref(),
            )
            .await?;
            Ok(Json(
                json!({"type": "function_call_output", "call_id": call.call_id, "output": output}),
            ))
        }
        other => Err(ApiError::InvalidRequest(format!(
            "format: unknown format {other:?}; use chat or responses"
        ))),
    }
}

/// Reads a JSON body as `T`; the error names the path of the bad field.
pub(super) fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    let mut json = serde_json::Deserializer::from_str(body);
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let reason = e.into_inner();
        ApiError::InvalidRequest(match path.as_str() {
            "." => reason.to_string(),
            _ => format!("{path}: {reason}"),
        })
    })
}

/// Runs `<client>-<tool>` with OpenAI-style arguments (a JSON string, or an object), recorded
/// with `parent` (the LLM request that asked for it); returns the tool's output as text:
/// strings as they are, anything else as JSON.
async fn run(
    state: &App,
    permit: &Permit,
    name: &str,
    arguments: Value,
    parent: Option<&str>,
) -> Result<String, ApiError> {
    let arguments = match arguments {
        Value::Null => json!({}),
        Value::String(text) if text.trim().is_empty() => json!({}),
        Value::String(text) => serde_json::from_str(&text).map_err(|e| {
            ApiError::InvalidArguments(format!("arguments of {name} are not valid JSON: {e}"))
        })?,
        other => other,
    };
    if !arguments.is_object() {
        return Err(ApiError::InvalidArguments(format!(
            "arguments of {name} must be a JSON object"
        )));
    }
    let origin = Origin {
        parent: parent.map(str::to_string),
        ..Origin::default()
    };
    let answer = state
        .gateway
        .call_from(permit, name, arguments, None, origin)
        .await?;
    let value = answer.into_value()?;
    Ok(match value {
        Value::String(text) => text,
        other => other.to_string(),
    })
}
