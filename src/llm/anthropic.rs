//! The Anthropic Messages protocol (`POST {base_url}/messages`), translated both ways so the
//! caller only ever sees OpenAI's shapes.
//!
//! Request, OpenAI → Anthropic: `system`/`developer` messages become `system`; an assistant's
//! `tool_calls` become `tool_use` blocks and `role: "tool"` messages `tool_result` blocks (in a
//! user turn, consecutive turns of one role merged, as Anthropic requires); `image_url` parts
//! become `image` blocks (base64 data URLs or URLs); `tools` become `{name, description,
//! input_schema}`; `tool_choice`, `parallel_tool_calls`, `stop`, `max_tokens` /
//! `max_completion_tokens` (Anthropic requires one: 4096 when neither is given), `temperature`,
//! `top_p` and `user` are mapped. Fields Anthropic has no counterpart for are not sent (it
//! refuses unknown fields).
//!
//! Answer, Anthropic → OpenAI: text blocks become `content`, `tool_use` blocks `tool_calls`
//! (arguments as a JSON string), stop reasons `finish_reason`, and usage `prompt_tokens` /
//! `completion_tokens`. A stream's events become `chat.completion.chunk`s as they arrive, with
//! usage at the end when `stream_options.include_usage` asks for it, then `[DONE]`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value, json};
use sse_stream::SseStream;

use super::Provider;
use super::keys::SecretKey;
use super::upstream::{self, AttemptError, Reply};

/// The API version codemode speaks.
const VERSION: &str = "2023-06-01";

/// `max_tokens` when the request gives none: Anthropic requires one.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Sends the OpenAI-shaped `body` to `provider` once, translated; the answer comes back in
/// OpenAI's shapes.
///
/// # Errors
/// [`AttemptError`] for a failed attempt, or a request that cannot be translated.
pub async fn send(
    http: &reqwest::Client,
    provider: &Provider,
    key: Option<&SecretKey>,
    body: &Value,
    stream: bool,
) -> Result<Reply, AttemptError> {
    let request = to_messages(body).map_err(|why| {
        AttemptError::Refused(super::LlmError::invalid(format!(
            "cannot send this request to provider {} (Anthropic Messages): {why}",
            provider.name
        )))
    })?;
    let mut auth = vec![("anthropic-version", VERSION)];
    if let Some(key) = key {
        auth.push(("x-api-key", key.expose()));
    }
    let opened = upstream::post(http, provider, "/messages", &auth, key, &request).await?;
    if stream {
        let include_usage = body["stream_options"]["include_usage"] == true;
        let events = SseStream::from_bytes_stream(opened.response.bytes_stream());
        return Ok(Reply::Stream(translate_stream(events, include_usage)));
    }
    let answer = opened.json(provider).await?;
    Ok(Reply::Complete(to_completion(&answer)))
}

// -- the request ---------------------------------------------------------------------------------

/// An OpenAI chat body as an Anthropic Messages body.
pub fn to_messages(body: &Value) -> Result<Value, String> {
    let mut system = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    for (index, message) in body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let role = message["role"].as_str().unwrap_or_default();
        let blocks = match role {
            "system" | "developer" => {
                system.push(text_of(&message["content"]));
                continue;
            }
            "user" => content_blocks(&message["content"])
                .map_err(|why| format!("messages[{index}]: {why}"))?,
            "assistant" => {
                assistant_blocks(message).map_err(|why| format!("messages[{index}]: {why}"))?
            }
            "tool" => vec![json!({
                "type": "tool_result",
                "tool_use_id": message["tool_call_id"],
                "content": text_of(&message["content"]),
            })],
            other => return Err(format!("messages[{index}]: unknown role {other:?}")),
        };
        let role = if role == "assistant" {
            "assistant"
        } else {
            "user"
        };
        match turns.last_mut() {
            Some((last, content)) if last == role => content.extend(blocks),
            _ => turns.push((role.to_string(), blocks)),
        }
    }
    let mut request = Map::new();
    request.insert("model".into(), body["model"].clone());
    let messages = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    request.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        request.insert("system".into(), Value::String(system.join("\n\n")));
    }
    let max_tokens = body["max_completion_tokens"]
        .as_u64()
        .or_else(|| body["max_tokens"].as_u64())
        .unwrap_or(DEFAULT_MAX_TOKENS);
    request.insert("max_tokens".into(), json!(max_tokens));
    for field in ["temperature", "top_p", "top_k", "stream"] {
        if let Some(value) = body.get(field).filter(|v| !v.is_null()) {
            request.insert(field.into(), value.clone());
        }
    }
    match &body["stop"] {
        Value::String(stop) => {
            request.insert("stop_sequences".into(), json!([stop]));
        }
        Value::Array(stops) => {
            request.insert("stop_sequences".into(), Value::Array(stops.clone()));
        }
        _ => {}
    }
    if let Some(user) = body["user"].as_str() {
        request.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = body["tools"].as_array() {
        let tools: Vec<Value> = tools.iter().filter_map(tool).collect();
        if !tools.is_empty() {
            request.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = tool_choice(&body["tool_choice"], &body["parallel_tool_calls"]) {
        request.insert("tool_choice".into(), choice);
    }
    Ok(Value::Object(request))
}

/// The text of a message's content: a string, or its text parts joined.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A user message's content as blocks: text and images.
fn content_blocks(content: &Value) -> Result<Vec<Value>, String> {
    match content {
        Value::String(text) => Ok(vec![json!({"type": "text", "text": text})]),
        Value::Array(parts) => parts.iter().map(part_block).collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err("content must be text or a list of parts".into()),
    }
}

fn part_block(part: &Value) -> Result<Value, String> {
    match part["type"].as_str() {
        Some("text") => Ok(json!({"type": "text", "text": part["text"]})),
        Some("image_url") => {
            let url = part["image_url"]["url"]
                .as_str()
                .or_else(|| part["image_url"].as_str())
                .ok_or("an image_url part without a url")?;
            Ok(json!({"type": "image", "source": image_source(url)?}))
        }
        other => Err(format!(
            "content parts of type {other:?} cannot be sent to Anthropic"
        )),
    }
}

/// `data:<media type>;base64,<data>` as a base64 source, anything else as a URL source.
fn image_source(url: &str) -> Result<Value, String> {
    let Some(data_url) = url.strip_prefix("data:") else {
        return Ok(json!({"type": "url", "url": url}));
    };
    let (media_type, data) = data_url
        .split_once(";base64,")
        .ok_or("an image data URL must be base64 (data:<type>;base64,<data>)")?;
    Ok(json!({"type": "base64", "media_type": media_type, "data": data}))
}

/// An assistant message as blocks: its text, then a `tool_use` per tool call.
fn assistant_blocks(message: &Value) -> Result<Vec<Value>, String> {
    let mut blocks = Vec::new();
    let text = text_of(&message["content"]);
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for (index, call) in message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let arguments = &call["function"]["arguments"];
        let input = match arguments {
            Value::String(text) if text.trim().is_empty() => json!({}),
            Value::String(text) => serde_json::from_str(text)
                .map_err(|e| format!("tool_calls[{index}].function.arguments is not JSON: {e}"))?,
            Value::Null => json!({}),
            other => other.clone(),
        };
        blocks.push(json!({
            "type": "tool_use",
            "id": call["id"],
            "name": call["function"]["name"],
            "input": input,
        }));
    }
    Ok(blocks)
}

/// An OpenAI function definition as an Anthropic tool.
fn tool(definition: &Value) -> Option<Value> {
    let function = &definition["function"];
    let name = function["name"].as_str()?;
    let mut tool = json!({
        "name": name,
        "input_schema": if function["parameters"].is_object() {
            function["parameters"].clone()
        } else {
            json!({"type": "object", "properties": {}})
        },
    });
    if let Some(description) = function["description"].as_str() {
        tool["description"] = json!(description);
    }
    Some(tool)
}

/// `tool_choice` (and `parallel_tool_calls: false`) in Anthropic's words.
fn tool_choice(choice: &Value, parallel: &Value) -> Option<Value> {
    let mut mapped = match choice {
        Value::String(mode) => match mode.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            _ => return None,
        },
        Value::Object(_) => json!({"type": "tool", "name": choice["function"]["name"]}),
        _ if *parallel == false => json!({"type": "auto"}),
        _ => return None,
    };
    if *parallel == false && mapped["type"] != "none" {
        mapped["disable_parallel_tool_use"] = json!(true);
    }
    Some(mapped)
}

// -- the answer ----------------------------------------------------------------------------------

/// An Anthropic message as an OpenAI `chat.completion`.
pub fn to_completion(message: &Value) -> Value {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in message["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => tool_calls.push(json!({
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"], "arguments": block["input"].to_string()},
            })),
            _ => {}
        }
    }
    let mut reply = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(text) },
    });
    if !tool_calls.is_empty() {
        reply["tool_calls"] = Value::Array(tool_calls);
    }
    json!({
        "id": message["id"],
        "object": "chat.completion",
        "created": now(),
        "model": message["model"],
        "choices": [{
            "index": 0,
            "message": reply,
            "finish_reason": finish_reason(&message["stop_reason"]),
        }],
        "usage": usage(&message["usage"]),
    })
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
fn finish_reason(stop: &Value) -> Value {
    match stop.as_str() {
        None => Value::Null,
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        Some(_) => json!("stop"),
    }
}

/// Anthropic's usage as OpenAI's (cached input counts as input).
fn usage(usage: &Value) -> Value {
    let count = |field: &str| usage[field].as_u64().unwrap_or(0);
    let prompt = count("input_tokens")
        + count("cache_creation_input_tokens")
        + count("cache_read_input_tokens");
    let completion = count("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// -- the stream ----------------------------------------------------------------------------------

/// Where a stream is: what every chunk repeats, and what its end needs.
#[derive(Default)]
struct StreamState {
    id: Value,
    model: Value,
    created: u64,
    /// The OpenAI `tool_calls` index of each Anthropic content block that is a tool call.
    tool_index: Vec<(u64, usize)>,
    usage: Value,
    include_usage: bool,
}

impl StreamState {
    fn chunk(&self, delta: Value, finish: Value) -> Bytes {
        let chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        Bytes::from(format!("data: {chunk}\n\n"))
    }

    /// The OpenAI chunks for one Anthropic event.
    fn translate(&mut self, event: &Value) -> Result<Vec<Bytes>, String> {
        let null = Value::Null;
        Ok(match event["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let message = &event["message"];
                self.id = message["id"].clone();
                self.model = message["model"].clone();
                self.created = now();
                self.usage = message["usage"].clone();
                vec![self.chunk(json!({"role": "assistant", "content": ""}), null)]
            }
            "content_block_start" => {
                let block = &event["content_block"];
                if block["type"] != "tool_use" {
                    return Ok(Vec::new());
                }
                let index = self.tool_index.len();
                self.tool_index
                    .push((event["index"].as_u64().unwrap_or_default(), index));
                vec![self.chunk(
                    json!({"tool_calls": [{"index": index, "id": block["id"], "type": "function",
                        "function": {"name": block["name"], "arguments": ""}}]}),
                    null,
                )]
            }
            "content_block_delta" => {
                let delta = &event["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => vec![self.chunk(json!({"content": delta["text"]}), null)],
                    Some("input_json_delta") => {
                        let block = event["index"].as_u64().unwrap_or_default();
                        let Some(&(_, index)) = self.tool_index.iter().find(|(b, _)| *b == block)
                        else {
                            return Ok(Vec::new());
                        };
                        vec![self.chunk(
                            json!({"tool_calls": [{"index": index,
                                "function": {"arguments": delta["partial_json"]}}]}),
                            null,
                        )]
                    }
                    _ => Vec::new(),
                }
            }
            "message_delta" => {
                if let Some(output) = event["usage"]["output_tokens"].as_u64() {
                    self.usage["output_tokens"] = json!(output);
                }
                vec![self.chunk(json!({}), finish_reason(&event["delta"]["stop_reason"]))]
            }
            "message_stop" => {
                let mut end = Vec::new();
                if self.include_usage {
                    let chunk = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [], "usage": usage(&self.usage),
                    });
                    end.push(Bytes::from(format!("data: {chunk}\n\n")));
                }
                end.push(Bytes::from_static(b"data: [DONE]\n\n"));
                end
            }
            "error" => {
                return Err(event["error"]["message"]
                    .as_str()
                    .unwrap_or("the provider reported an error")
                    .to_string());
            }
            _ => Vec::new(),
        })
    }
}

/// Anthropic's events as OpenAI's chunks, each forwarded as soon as its event arrives.
fn translate_stream(
    events: impl futures::Stream<Item = Result<sse_stream::Sse, sse_stream::Error>> + Send + 'static,
    include_usage: bool,
) -> upstream::EventStream {
    let state = StreamState {
        include_usage,
        ..StreamState::default()
    };
    events
        .scan(state, |state, event| {
            let chunks: Vec<Result<Bytes, String>> = match event {
                Err(error) => vec![Err(error.to_string())],
                Ok(event) => match event.data.as_deref().map(serde_json::from_str::<Value>) {
                    None => Vec::new(),
                    Some(Err(error)) => vec![Err(format!("an unreadable event: {error}"))],
                    Some(Ok(data)) => match state.translate(&data) {
                        Ok(chunks) => chunks.into_iter().map(Ok).collect(),
                        Err(why) => vec![Err(why)],
                    },
                },
            };
            futures::future::ready(Some(futures::stream::iter(chunks)))
        })
        .flatten()
        .boxed()
}
