//! `POST /v1/chat/completions`: an OpenAI-compatible chat endpoint that adds the caller's MCP
//! tools and forwards to an LLM provider; `GET /v1/models`: what the providers serve.
//!
//! The gateway owns a few body fields and takes them out before forwarding: `model`
//! (`<provider>/<model>`), `fallbacks`, the MCP filters (`mcp-include-clients`,
//! `mcp-exclude-clients`, `mcp-include-tools`, `mcp-exclude-tools`) and the codemode extension
//! `mcp-disable-auto-tool-inject`. Everything else reaches the provider as the caller wrote it.
//! The caller's permitted MCP tools (its key, narrowed by the filters in headers and body) are
//! added to `tools` as OpenAI function definitions, unless injection is off
//! (`tool_manager_config.disable_auto_tool_inject`, or the request's own opt-out).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Map, Value, json};

use super::body::Body;
use super::caller::{BodyFilters, Caller};
use crate::agent::Agent;
use crate::app::App;
use crate::gateway::new_id;
use crate::llm::route::{self, Answer, ChatRequest, Served};
use crate::llm::upstream::EventStream;
use crate::llm::{LlmError, ModelRef};
use crate::mcp::tools::openai_function;
use crate::observe::audit::now_ms;
use crate::policy::Permit;
use crate::store::LlmRecord;

/// The body fields the gateway owns: read here, never forwarded.
const FILTER_FIELDS: [&str; 4] = [
    "mcp-include-clients",
    "mcp-exclude-clients",
    "mcp-include-tools",
    "mcp-exclude-tools",
];

/// The request's opt-out of tool injection, in the body and as a header.
const NO_INJECT_FIELD: &str = "mcp-disable-auto-tool-inject";
const NO_INJECT_HEADER: &str = "x-bf-mcp-disable-auto-tool-inject";

/// The handler.
pub async fn complete(
    State(state): State<Arc<App>>,
    Caller(permit): Caller,
    headers: HeaderMap,
    Body(body): Body,
) -> Response {
    let at_ms = now_ms();
    let vk = permit.key().map(str::to_string);
    let prepared = match read_request(&state, permit, &headers, &body).await {
        Ok(prepared) => prepared,
        Err(error) => return error_response(&error, None),
    };
    let stream = prepared.request.stream;
    let mut record = LlmRecord {
        at_ms,
        vk,
        provider: String::new(),
        model_requested: String::new(),
        model_used: None,
        status: 200,
        prompt_tokens: None,
        completion_tokens: None,
        latency_ms: 0.0,
        stream,
        request_id: new_id(),
        tool_call_ids: Vec::new(),
    };
    let routed = serve(&state, prepared, &record.request_id).await;
    let served = match &routed {
        Ok(Answer::Complete(answer, served)) => {
            note_answer(&mut record, answer);
            served
        }
        Ok(Answer::Stream(_, served)) | Err((_, served)) => served,
    };
    record.provider = served.provider.clone();
    record.model_requested = served.model_requested.clone();
    record.model_used = Some(served.model_used.clone()).filter(|m| !m.is_empty());
    record.latency_ms = served.latency_ms;
    let request_id = record.request_id.clone();
    let response = match routed {
        Ok(Answer::Complete(mut answer, _)) => {
            answer["extra_fields"]["request_id"] = json!(request_id);
            Json(answer).into_response()
        }
        Ok(Answer::Stream(events, served)) => stream_response(events, &served),
        Err((error, served)) => {
            record.status = error.status.as_u16();
            error_response(&error, Some(&served))
        }
    };
    // A provider a caller named but nobody configured is not a label.
    let provider = match state.providers.get(&record.provider) {
        Some(_) => record.provider.as_str(),
        None => "other",
    };
    let model = record.model_used.as_deref().unwrap_or("none");
    state.gateway.metrics().llm_request(
        provider,
        model,
        record.status,
        (record.prompt_tokens, record.completion_tokens),
    );
    if let Some(audit) = &state.audit {
        audit.record_llm(record);
    }
    response
}

/// Routes the request; in agent mode when it was given MCP tools.
async fn serve(
    state: &Arc<App>,
    prepared: Prepared,
    request_id: &str,
) -> Result<Answer, (LlmError, Served)> {
    let Prepared {
        request,
        permit,
        injected,
    } = prepared;
    if injected.is_empty() {
        return route::route(&state.providers, request).await;
    }
    let agent = Arc::new(Agent::new(
        Arc::clone(state),
        permit,
        injected,
        request_id.to_string(),
    ));
    if request.stream {
        let (events, served) = agent.stream(request).await?;
        Ok(Answer::Stream(events, served))
    } else {
        let (answer, served) = agent.complete(request).await?;
        Ok(Answer::Complete(answer, served))
    }
}

/// What the record keeps of a complete answer: its usage and the tool calls it asked for.
fn note_answer(record: &mut LlmRecord, answer: &Value) {
    record.prompt_tokens = answer["usage"]["prompt_tokens"].as_u64();
    record.completion_tokens = answer["usage"]["completion_tokens"].as_u64();
    record.tool_call_ids = answer["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|choice| {
            choice["message"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(|call| call["id"].as_str().map(str::to_string))
        .collect();
}

/// `GET /v1/models`: `{"object": "list", "data": [{"id": "<provider>/<model>", ...}]}`.
pub async fn models(State(state): State<Arc<App>>, Caller(_permit): Caller) -> Json<Value> {
    let data: Vec<Value> = state
        .providers
        .models()
        .await
        .into_iter()
        .map(|(provider, id)| json!({"id": id, "object": "model", "created": 0, "owned_by": provider}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// A chat request read and ready to serve.
struct Prepared {
    /// What the router sends.
    request: ChatRequest,
    /// The caller's permit, narrowed by the request's filters.
    permit: Permit,
    /// The names of the MCP tools added to the request (empty: none, no agent mode).
    injected: HashSet<String>,
}

/// The body as the router needs it: the gateway's fields taken out, the caller's tools joined
/// by the MCP tools it may use.
async fn read_request(
    state: &App,
    permit: Permit,
    headers: &HeaderMap,
    body: &str,
) -> Result<Prepared, LlmError> {
    let mut body: Map<String, Value> = serde_json::from_str(body)
        .map_err(|e| LlmError::invalid(format!("the body is not a JSON object: {e}")))?;
    let model = match body.remove("model") {
        Some(Value::String(model)) => ModelRef::parse(&model, "model")?,
        Some(_) => return Err(LlmError::invalid("model: must be a string")),
        None => return Err(LlmError::invalid("model: required (<provider>/<model>)")),
    };
    let mut targets = vec![model];
    match body.remove("fallbacks") {
        None | Some(Value::Null) => {}
        Some(Value::Array(fallbacks)) => {
            for (index, fallback) in fallbacks.iter().enumerate() {
                let what = format!("fallbacks[{index}]");
                let Some(text) = fallback.as_str() else {
                    return Err(LlmError::invalid(format!("{what}: must be a string")));
                };
                targets.push(ModelRef::parse(text, &what)?);
            }
        }
        Some(_) => return Err(LlmError::invalid("fallbacks: must be a list of models")),
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(LlmError::invalid("stream: must be true or false")),
    };
    let filters: Map<String, Value> = FILTER_FIELDS
        .iter()
        .filter_map(|name| Some((name.to_string(), body.remove(*name)?)))
        .collect();
    let filters: BodyFilters = serde_json::from_value(Value::Object(filters))
        .map_err(|e| LlmError::invalid(format!("MCP filters: {e}")))?;
    let opted_out = match body.remove(NO_INJECT_FIELD) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(off)) => off,
        Some(_) => {
            return Err(LlmError::invalid(format!(
                "{NO_INJECT_FIELD}: must be true or false"
            )));
        }
    } || headers
        .get(NO_INJECT_HEADER)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    if let Some(model) = targets
        .iter()
        .find(|m| !permit.allows_model(&m.provider, &m.model))
    {
        let key = permit.key().unwrap_or_default();
        return Err(LlmError::new(
            axum::http::StatusCode::FORBIDDEN,
            "permission_error",
            format!("model {model} is not allowed for virtual key {key}"),
        ));
    }
    let permit = filters.narrow(permit);
    let injected = if state.disable_auto_tool_inject || opted_out {
        HashSet::new()
    } else {
        inject_tools(state, &permit, &mut body).await?
    };
    Ok(Prepared {
        request: ChatRequest {
            body,
            targets,
            stream,
        },
        permit,
        injected,
    })
}

/// Adds the MCP tools `permit` allows to the body's `tools` and returns their names; a name the
/// caller's own tools already use is refused rather than shadowed.
async fn inject_tools(
    state: &App,
    permit: &Permit,
    body: &mut Map<String, Value>,
) -> Result<HashSet<String>, LlmError> {
    let injected: Vec<Value> = state
        .gateway
        .tools(permit)
        .await
        .iter()
        .map(openai_function)
        .collect();
    if injected.is_empty() {
        return Ok(HashSet::new());
    }
    let mut tools = match body.remove("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(LlmError::invalid("tools: must be a list")),
    };
    let name_of = |tool: &Value| tool["function"]["name"].as_str().map(str::to_string);
    let ours: HashSet<String> = injected.iter().filter_map(name_of).collect();
    if let Some((index, name)) = tools
        .iter()
        .enumerate()
        .find_map(|(index, tool)| Some((index, name_of(tool).filter(|n| ours.contains(n))?)))
    {
        return Err(LlmError::invalid(format!(
            "tools[{index}]: {name} is also the name of an MCP tool codemode adds; rename yours, \
             or leave the MCP one out with mcp-exclude-tools"
        )));
    }
    tools.extend(injected);
    body.insert("tools".into(), Value::Array(tools));
    Ok(ours)
}

/// The answer's event stream, forwarded chunk by chunk as it arrives. A broken stream ends
/// with an error event. Dropping the response (the caller went away) drops the upstream
/// request with it.
fn stream_response(events: EventStream, served: &Served) -> Response {
    let events = events.scan(false, |broken, chunk| {
        let next = match chunk {
            _ if *broken => None,
            Ok(bytes) => Some(bytes),
            Err(why) => {
                *broken = true;
                let error = json!({"error": {"type": "api_error",
                        "message": format!("the provider's stream broke: {why}")}});
                Some(Bytes::from(format!("data: {error}\n\n")))
            }
        };
        futures::future::ready(next.map(Ok::<Bytes, Infallible>))
    });
    let mut response = axum::body::Body::from_stream(events).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (name, value) in [
        ("x-codemode-provider", &served.provider),
        ("x-codemode-model-used", &served.model_used),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}

/// OpenAI's error shape with the status it carries, and `extra_fields` when a provider was
/// involved.
fn error_response(error: &LlmError, served: Option<&Served>) -> Response {
    let mut body = error.body();
    if let Some(served) = served {
        body["extra_fields"] = json!(served);
    }
    if error.status.is_server_error() {
        tracing::warn!(status = %error.status, error = %error.message, "chat request failed");
    }
    (error.status, Json(body)).into_response()
}
