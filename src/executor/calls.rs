//! The tool calls of one execution: started, driven to an answer, handed back, recorded.
//!
//! A call's future is created when the guest starts it and polled once at once, so its request
//! leaves immediately. It is polled again, together with every other call in flight, whenever the
//! guest waits on any call. That is what makes fan-out concurrent: a script that starts ten calls
//! and then waits has all ten in flight during the wait. Nothing is spawned, so a call that
//! answers at once costs no thread hop, and dropping the execution's state cancels whatever is
//! still in flight.
//!
//! Each slot moves `Running → Answered → Ready → Collected`; a request refused before dispatch
//! (malformed, too large) starts at `Ready`. The record of a call is written when its response is
//! built, or by [`Calls::into_records`] for calls the script never collected.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::dispatch::{ToolDispatcher, ToolError};
use super::limits::Limits;
use super::outcome::CallRecord;
use super::protocol::{ErrorKind, LimitKind, ToolRequest, ToolResponse, encode_ok};

/// What a dispatched call came back with, and how long it took.
type Answer = (Result<Value, ToolError>, Duration);

type CallFuture = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// The guest used a call id it was never given, or out of order. Only hostile code does this.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ProtocolError(String);

enum State {
    Running(CallFuture),
    Answered(Answer),
    /// The JSON response, waiting for the guest to read it.
    Ready(Encoded),
    Collected,
}

struct Slot {
    client: String,
    tool: String,
    request_bytes: u64,
    started: Instant,
    /// When it started, in milliseconds since the execution began.
    started_ms: f64,
    state: State,
    record: Option<CallRecord>,
}

/// A response as the guest will read it, and the kind of failure it carries.
struct Encoded {
    bytes: Vec<u8>,
    error: Option<ErrorKind>,
}

impl Encoded {
    fn new(response: &ToolResponse) -> Encoded {
        // A `Value` always serialises; the fallback keeps the guest's protocol intact anyway.
        let bytes = serde_json::to_vec(response).unwrap_or_else(|_| {
            br#"{"error": {"type": "ToolError", "message": "unencodable response"}}"#.to_vec()
        });
        Encoded {
            bytes,
            error: response.error_kind(),
        }
    }
}

/// Every call started by one execution, indexed by call id.
pub(crate) struct Calls {
    slots: Vec<Slot>,
    /// Ids of the calls still running, so a wait polls only those.
    running: Vec<usize>,
    dispatcher: Arc<dyn ToolDispatcher>,
    limits: Limits,
    /// When the execution began: call start times are relative to it.
    origin: Instant,
}

impl Calls {
    pub(crate) fn new(dispatcher: Arc<dyn ToolDispatcher>, limits: Limits) -> Self {
        Calls {
            slots: Vec::new(),
            running: Vec::new(),
            dispatcher,
            limits,
            origin: Instant::now(),
        }
    }

    /// Calls started so far.
    pub(crate) fn started(&self) -> usize {
        self.slots.len()
    }

    /// Parses `request` and dispatches it, or answers it at once with the reason it cannot be
    /// sent. Returns the new call's id.
    pub(crate) fn start(&mut self, request: &[u8]) -> usize {
        let request_bytes = request.len() as u64;
        let mut slot = match serde_json::from_slice::<ToolRequest>(request) {
            Err(error) => refused(
                "?",
                "?",
                request_bytes,
                failure(&ToolError::InvalidArguments(format!(
                    "malformed tool request: {error}"
                ))),
            ),
            Ok(request) if request_bytes > self.limits.max_tool_arg_bytes => {
                let response = ToolResponse::limit(
                    format!(
                        "the request to {}.{} is {request_bytes} bytes, over the limit of {}; send less per call",
                        bounded(&request.client),
                        bounded(&request.tool),
                        self.limits.max_tool_arg_bytes
                    ),
                    LimitKind::MaxToolArgBytes,
                    self.limits.max_tool_arg_bytes,
                    request_bytes,
                );
                refused(&request.client, &request.tool, request_bytes, response)
            }
            Ok(request) => self.dispatch(request, request_bytes),
        };
        slot.started_ms = slot.started.duration_since(self.origin).as_secs_f64() * 1e3;
        let id = self.slots.len();
        if let State::Running(_) = slot.state {
            self.running.push(id);
        }
        self.slots.push(slot);
        id
    }

    fn dispatch(&self, request: ToolRequest, request_bytes: u64) -> Slot {
        let arguments = match request.arguments {
            Value::Null => Value::Object(Default::default()),
            Value::Object(map) => Value::Object(map),
            other => {
                let error = ToolError::InvalidArguments(format!(
                    "arguments of {}.{} must be an object of parameter names to values, not {}",
                    request.client,
                    request.tool,
                    json_kind(&other)
                ));
                return refused(
                    &request.client,
                    &request.tool,
                    request_bytes,
                    failure(&error),
                );
            }
        };
        let dispatcher = Arc::clone(&self.dispatcher);
        let (client, tool) = (request.client.clone(), request.tool.clone());
        let started = Instant::now();
        let future: CallFuture = Box::pin(async move {
            let answer = dispatcher.call(&client, &tool, arguments).await;
            (answer, started.elapsed())
        });
        Slot {
            client: bounded(&request.client),
            tool: bounded(&request.tool),
            request_bytes,
            started,
            started_ms: 0.0,
            state: State::Running(future),
            record: None,
        }
    }

    /// Polls call `id` once, if it is running.
    pub(crate) fn poll_one(&mut self, id: usize, cx: &mut Context<'_>) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.poll(cx);
        }
    }

    /// Polls every running call; ready when call `id` has its answer.
    pub(crate) fn poll_until_answered(
        &mut self,
        id: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ProtocolError>> {
        for slot in &mut self.slots {
            slot.poll(cx);
        }
        match self.slots.get(id).map(|slot| &slot.state) {
            None => Poll::Ready(Err(ProtocolError(format!("unknown tool call id {id}")))),
            Some(State::Running(_)) => Poll::Pending,
            Some(_) => Poll::Ready(Ok(())),
        }
    }

    /// Builds the JSON response of answered call `id` and records the call; returns the
    /// response's length. A call collected before answers with an error response.
    pub(crate) fn respond(&mut self, id: usize) -> Result<usize, ProtocolError> {
        let limits = self.limits;
        let slot = self
            .slots
            .get_mut(id)
            .ok_or_else(|| ProtocolError(format!("unknown tool call id {id}")))?;
        let response = match std::mem::replace(&mut slot.state, State::Collected) {
            State::Answered((answer, duration)) => {
                let response = encoded_answer(&answer, &slot.client, &slot.tool, &limits);
                slot.record = Some(slot_record(slot, &response, duration));
                response
            }
            State::Ready(response) => {
                // Refused before dispatch: recorded now, when the script learns of it.
                if slot.record.is_none() {
                    slot.record = Some(slot_record(slot, &response, Duration::ZERO));
                }
                response
            }
            State::Collected => Encoded::new(&failure(&ToolError::InvalidArguments(format!(
                "tool call {id} was already collected"
            )))),
            State::Running(_) => {
                return Err(ProtocolError(format!(
                    "tool call {id} has not answered yet"
                )));
            }
        };
        let len = response.bytes.len();
        slot.state = State::Ready(response);
        Ok(len)
    }

    /// Takes the response of call `id`, which must be exactly `len` bytes long.
    pub(crate) fn take_response(
        &mut self,
        id: usize,
        len: usize,
    ) -> Result<Vec<u8>, ProtocolError> {
        let slot = self
            .slots
            .get_mut(id)
            .ok_or_else(|| ProtocolError(format!("unknown tool call id {id}")))?;
        match std::mem::replace(&mut slot.state, State::Collected) {
            State::Ready(response) if response.bytes.len() == len => Ok(response.bytes),
            State::Ready(response) => Err(ProtocolError(format!(
                "tool call {id}: a buffer of {len} bytes for a {}-byte response",
                response.bytes.len()
            ))),
            _ => Err(ProtocolError(format!(
                "tool call {id} has no response to read"
            ))),
        }
    }

    /// The records of every call, in start order. Calls the script never collected are recorded
    /// with their outcome when they had one (their effects happened), else as `Cancelled`; the
    /// ones still in flight are cancelled when `self` is dropped.
    pub(crate) fn into_records(self) -> Vec<CallRecord> {
        let limits = self.limits;
        self.slots
            .into_iter()
            .map(|slot| match (slot.record.clone(), &slot.state) {
                (Some(record), _) => record,
                (None, State::Answered((answer, duration))) => {
                    let response = encoded_answer(answer, &slot.client, &slot.tool, &limits);
                    slot_record(&slot, &response, *duration)
                }
                (None, State::Ready(response)) => slot_record(&slot, response, Duration::ZERO),
                (None, _) => {
                    let cancelled = Encoded {
                        bytes: Vec::new(),
                        error: Some(ErrorKind::Cancelled),
                    };
                    slot_record(&slot, &cancelled, slot.started.elapsed())
                }
            })
            .collect()
    }
}

impl Slot {
    fn poll(&mut self, cx: &mut Context<'_>) {
        if let State::Running(future) = &mut self.state
            && let Poll::Ready(answer) = future.as_mut().poll(cx)
        {
            self.state = State::Answered(answer);
        }
    }
}

/// The record of `slot`, whose response to the guest is `response`.
fn slot_record(slot: &Slot, response: &Encoded, duration: Duration) -> CallRecord {
    CallRecord {
        client: slot.client.clone(),
        tool: slot.tool.clone(),
        ok: response.error.is_none(),
        error_type: response.error,
        started_ms: slot.started_ms,
        duration_ms: duration.as_secs_f64() * 1e3,
        request_bytes: slot.request_bytes,
        response_bytes: response.bytes.len() as u64,
    }
}

fn refused(client: &str, tool: &str, request_bytes: u64, response: ToolResponse) -> Slot {
    Slot {
        client: bounded(client),
        tool: bounded(tool),
        request_bytes,
        started: Instant::now(),
        started_ms: 0.0,
        state: State::Ready(Encoded::new(&response)),
        record: None,
    }
}

/// The response the guest receives for an answered call, encoded once: its size is what the
/// result limit compares.
fn encoded_answer(
    answer: &Result<Value, ToolError>,
    client: &str,
    tool: &str,
    limits: &Limits,
) -> Encoded {
    let value = match answer {
        Err(error) => return Encoded::new(&failure(error)),
        Ok(value) => value,
    };
    let bytes = encode_ok(value);
    let size = bytes.len() as u64;
    if size <= limits.max_tool_result_bytes {
        return Encoded { bytes, error: None };
    }
    Encoded::new(&ToolResponse::limit(
        format!(
            "the result of {client}.{tool} is {size} bytes, over the limit of {}; ask the tool for less",
            limits.max_tool_result_bytes
        ),
        LimitKind::MaxToolResultBytes,
        limits.max_tool_result_bytes,
        size,
    ))
}

fn failure(error: &ToolError) -> ToolResponse {
    ToolResponse::failure(error.kind(), error.to_string())
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The longest name a call record keeps: longer than any client or tool codemode serves, so a
/// real name is never cut, and a forged one cannot make the run's record large.
const MAX_RECORDED_NAME_BYTES: usize = 256;

/// `name`, cut to [`MAX_RECORDED_NAME_BYTES`] (on a character boundary) with a marker saying so.
fn bounded(name: &str) -> String {
    if name.len() <= MAX_RECORDED_NAME_BYTES {
        return name.to_string();
    }
    let mut end = MAX_RECORDED_NAME_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &name[..end], name.len())
}
