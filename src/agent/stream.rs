//! The agent loop inside one event stream.
//!
//! The model's text reaches the caller as it is generated. Chunks that carry tool calls, and the
//! chunk that finishes a turn, are held while the calls are reassembled by index. At the end of
//! a turn: if every call may run on its own (and rounds remain), they run, the conversation
//! grows by the assistant message and the results, and the next model turn continues the same
//! stream: its role chunk is dropped (the caller already has one) and its text follows. Otherwise
//! the held chunks are released as the model sent them. Usage chunks are summed and sent once,
//! at the end, before `[DONE]`. While tools run, SSE comment lines
//! (`: codemode: running <tools>`) tell the caller why the stream is quiet; clients ignore
//! comments, so no fake assistant text is ever sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use sse_stream::SseStream;
use tokio::sync::mpsc;

use super::{Agent, ToolCall, Usage, append_turn, auth_required};
use crate::llm::LlmError;
use crate::llm::route::{Answer, ChatRequest, McpAuthRequired, Served};
use crate::llm::upstream::EventStream;

/// Chunks buffered between the loop and a slow caller.
const CHANNEL_CHUNKS: usize = 64;

/// Where the loop's chunks go: the caller's response body.
type Out = mpsc::Sender<Result<Bytes, String>>;

/// The caller went away: the loop stops.
struct Gone;

async fn emit(out: &Out, item: Result<Bytes, String>) -> Result<(), Gone> {
    out.send(item).await.map_err(|_| Gone)
}

/// What one streamed turn left behind.
#[derive(Default)]
struct Turn {
    /// Tool-call and finishing chunks, held, in the order they came (`data` payloads).
    held: Vec<String>,
    /// Tool calls being reassembled, by their index.
    calls: BTreeMap<u64, ToolCall>,
    /// The turn's text, for the assistant message of the next turn.
    text: String,
    /// The last usage chunk, a template for the summed one.
    usage_chunk: Option<Value>,
}

impl Agent {
    /// Serves `request` as an event stream in agent mode. The first model call happens here, so
    /// a request no provider accepts fails with its status; the rest runs as the caller reads.
    ///
    /// # Errors
    /// The first model call's error, as the router gives it.
    pub async fn stream(
        self: Arc<Self>,
        request: ChatRequest,
    ) -> Result<(EventStream, Served), (LlmError, Served)> {
        let (events, served) = open(&self, &request).await?;
        let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
        tokio::spawn(async move {
            // When the caller goes away the loop is dropped where it stands, and with it the
            // upstream request and any tool call in flight.
            let watch = sender.clone();
            tokio::select! {
                _ = self.relay(request, events, sender) => {}
                () = watch.closed() => {}
            }
        });
        let chunks = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|chunk| (chunk, receiver))
        });
        Ok((chunks.boxed(), served))
    }

    async fn relay(
        &self,
        mut request: ChatRequest,
        mut events: EventStream,
        out: Out,
    ) -> Result<(), Gone> {
        let mut usage = Usage::default();
        let mut usage_chunk = None;
        let mut round = 0;
        let mut auth = None;
        loop {
            let mut turn = match self.read_turn(events, round > 0, &mut usage, &out).await? {
                Ok(turn) => turn,
                Err(why) => return emit(&out, Err(why)).await,
            };
            if turn.usage_chunk.is_some() {
                usage_chunk = turn.usage_chunk.take();
            }
            let calls: Vec<ToolCall> = turn.calls.values().cloned().collect();
            let more = !calls.is_empty() && round < self.max_rounds;
            let (auto, pending) = if more {
                self.split(calls).await
            } else {
                (Vec::new(), Vec::new())
            };
            if !more || auto.is_empty() || !pending.is_empty() {
                return finish(turn.held, usage_chunk, auth, &usage, &out).await;
            }
            round += 1;
            let names: Vec<&str> = auto.iter().map(|(c, _)| c.name.as_str()).collect();
            emit(&out, Ok(comment(&format!("running {}", names.join(", "))))).await?;
            let executed = self.run(auto, round).await;
            if let Some(required) = auth_required(&executed) {
                let note = format!(
                    "{} needs your authorization: {}",
                    required.mcp_client_name, required.authorize_url
                );
                emit(&out, Ok(comment(&note))).await?;
                auth = auth.or(Some(required));
            }
            append_turn(&mut request.body, &json!(turn.text), &executed);
            events = match open(self, &request).await {
                Ok((events, _)) => events,
                Err((error, _)) => return emit(&out, Err(error.message)).await,
            };
        }
    }

    /// Reads one turn's events: text goes out at once (`continued`: without the role a later
    /// turn's first chunk repeats), tool calls and the finish are held, usage is summed.
    /// The inner error is a broken stream.
    async fn read_turn(
        &self,
        events: EventStream,
        continued: bool,
        usage: &mut Usage,
        out: &Out,
    ) -> Result<Result<Turn, String>, Gone> {
        let bytes = events.map(|chunk| chunk.map_err(std::io::Error::other));
        let mut events = Box::pin(SseStream::from_bytes_stream(bytes));
        let mut turn = Turn::default();
        while let Some(event) = events.next().await {
            let data = match event {
                Ok(event) => event.data.unwrap_or_default(),
                Err(error) => return Ok(Err(error.to_string())),
            };
            if data.trim() == "[DONE]" {
                break;
            }
            if let Some(data) = turn.take(data, continued, usage) {
                emit(out, Ok(Bytes::from(format!("data: {data}\n\n")))).await?;
            }
        }
        Ok(Ok(turn))
    }
}

impl Turn {
    /// Takes one chunk: what to send now, if anything (held and summed parts are kept).
    fn take(&mut self, data: String, continued: bool, usage: &mut Usage) -> Option<String> {
        let Ok(mut chunk) = serde_json::from_str::<Value>(&data) else {
            return Some(data);
        };
        // The chunk as the model sent it, unless its usage had to be taken out.
        let mut original = Some(data);
        if chunk["usage"].is_object() {
            usage.add(&chunk["usage"]);
            let mut template = chunk.clone();
            template["choices"] = json!([]);
            self.usage_chunk = Some(template);
            if chunk["choices"].as_array().is_none_or(Vec::is_empty) {
                return None;
            }
            if let Some(fields) = chunk.as_object_mut() {
                fields.remove("usage");
            }
            original = None;
        }
        let choice = &mut chunk["choices"][0];
        if let Some(text) = choice["delta"]["content"].as_str() {
            self.text.push_str(text);
        }
        let calls = choice["delta"]["tool_calls"].as_array().cloned();
        for call in calls.iter().flatten() {
            self.reassemble(call);
        }
        if calls.is_some() || !choice["finish_reason"].is_null() {
            self.held
                .push(original.unwrap_or_else(|| chunk.to_string()));
            return None;
        }
        if continued && let Some(delta) = choice["delta"].as_object_mut() {
            delta.remove("role");
            let empty = delta
                .get("content")
                .is_none_or(|c| c.as_str().is_some_and(str::is_empty) || c.is_null());
            if empty && delta.len() <= 1 {
                return None;
            }
            original = None;
        }
        Some(original.unwrap_or_else(|| chunk.to_string()))
    }

    /// Adds one tool-call delta to the call at its index.
    fn reassemble(&mut self, delta: &Value) {
        let index = delta["index"].as_u64().unwrap_or_default();
        let call = self.calls.entry(index).or_insert_with(|| ToolCall {
            id: String::new(),
            name: String::new(),
            arguments: String::new(),
        });
        if let Some(id) = delta["id"].as_str() {
            call.id = id.to_string();
        }
        if let Some(name) = delta["function"]["name"].as_str() {
            call.name.push_str(name);
        }
        if let Some(arguments) = delta["function"]["arguments"].as_str() {
            call.arguments.push_str(arguments);
        }
    }
}

/// Asks the model for the next turn, streamed.
async fn open(
    agent: &Agent,
    request: &ChatRequest,
) -> Result<(EventStream, Served), (LlmError, Served)> {
    match agent.ask(request, true).await? {
        Answer::Stream(events, served) => Ok((events, served)),
        // A provider that ignored `stream`: say so rather than fake a stream.
        Answer::Complete(_, served) => Err((
            LlmError::invalid("the provider answered in full to a streamed request"),
            served,
        )),
    }
}

/// Releases the held chunks, then the summed usage, then `[DONE]`. When a tool asked for the
/// caller's authorization, a last chunk without choices (the usage chunk, when there is one)
/// carries `extra_fields.mcp_auth_required`, as a complete answer does.
async fn finish(
    held: Vec<String>,
    usage_chunk: Option<Value>,
    auth: Option<McpAuthRequired>,
    usage: &Usage,
    out: &Out,
) -> Result<(), Gone> {
    for data in held {
        emit(out, Ok(Bytes::from(format!("data: {data}\n\n")))).await?;
    }
    let last = match (usage_chunk, &auth) {
        (Some(mut chunk), _) => {
            usage.write(&mut chunk["usage"]);
            Some(chunk)
        }
        (None, Some(_)) => Some(json!({"object": "chat.completion.chunk", "choices": []})),
        (None, None) => None,
    };
    if let Some(mut chunk) = last {
        if let Some(auth) = auth {
            chunk["extra_fields"] = json!({ "mcp_auth_required": auth });
        }
        emit(out, Ok(Bytes::from(format!("data: {chunk}\n\n")))).await?;
    }
    emit(out, Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await
}

/// An SSE comment line: ignored by clients, visible to anyone watching the stream.
fn comment(text: &str) -> Bytes {
    let line: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    Bytes::from(format!(": codemode: {line}\n\n"))
}
