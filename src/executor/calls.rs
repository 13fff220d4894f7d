//! The tool calls of one execution: started, driven to an answer, handed back, recorded.
//!
//! A call's future is created when the guest starts it and polled once at once, so its request
//! leaves immediately. It is polled again, together with every other call in flight, whenever the
//! guest waits on any call. That is what makes fan-out concurrent: a script that starts ten calls
//! and then waits has all ten in flight during the wait. Nothing is spawned, so a call that
//! answers at once costs no thread hop, and dropping the execution's state cancels whatever is
//! still in flight.
//!
//! Each slot moves `Running → Ready → Collected`; a request refused before dispatch (too large,
//! unreadable) starts at `Ready`. An answer is encoded for the guest as soon as it arrives, so
//! the host keeps bytes, not a parsed value. What the host holds for a call (its parsed
//! arguments while it runs, its response until the guest reads it) is charged to the run's
//! memory ([`RunMemory`]). The record of a call is written when the script collects it, or by
//! [`Calls::into_records`] for calls it never collected.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::bounded_json::{self, ParseError};
use super::dispatch::{ToolDispatcher, ToolError};
use super::limits::Limits;
use super::memory::{OverBudget, RunMemory};
use super::outcome::CallRecord;
use super::protocol::{ErrorKind, LimitKind, ToolResponse, encode_ok};

/// What a dispatched call came back with, and how long it took.
type Answer = (Result<Value, ToolError>, Duration);

type CallFuture = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// The guest used a call id it was never given, or out of order. Only hostile code does this.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ProtocolError(String);

/// A tool request as the guest hands it over: UTF-8 names and the arguments' JSON, unread.
pub(crate) struct CallRequest<'a> {
    pub(crate) client: &'a [u8],
    pub(crate) tool: &'a [u8],
    pub(crate) arguments: &'a [u8],
}

enum State {
    Running(CallFuture),
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
    /// From the start to the answer.
    duration: Duration,
    state: State,
    /// Bytes charged to the run's memory for what the host holds of this call now.
    charged: usize,
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
    /// The per-call limits the host answered a call with: only these may end the run as the
    /// script's `LimitExceeded` (a script may raise that exception naming any limit it likes).
    fired: Vec<LimitKind>,
}

impl Calls {
    pub(crate) fn new(dispatcher: Arc<dyn ToolDispatcher>, limits: Limits) -> Self {
        Calls {
            slots: Vec::new(),
            running: Vec::new(),
            dispatcher,
            limits,
            origin: Instant::now(),
            fired: Vec::new(),
        }
    }

    /// Calls started so far.
    pub(crate) fn started(&self) -> usize {
        self.slots.len()
    }

    /// True when the host answered some call of this run with a `LimitExceeded` for `limit`.
    pub(crate) fn fired(&self, limit: LimitKind) -> bool {
        self.fired.contains(&limit)
    }

    /// Checks `request`, parses its arguments within the run's memory and dispatches it, or
    /// answers it at once with the reason it cannot be sent. Returns the new call's id.
    ///
    /// Sizes are checked before anything is parsed or copied: names are cut to what a record
    /// keeps, and arguments over `max_tool_arg_bytes` are refused unread. The call's slot and
    /// record stay until the run ends and are charged to its memory: when they do not fit, the
    /// run is out of memory.
    pub(crate) fn start(
        &mut self,
        request: CallRequest<'_>,
        memory: &mut RunMemory,
    ) -> Result<usize, OverBudget> {
        let client = bounded(request.client);
        let tool = bounded(request.tool);
        memory.charge(
            size_of::<Slot>() + size_of::<CallRecord>() + 2 * (client.len() + tool.len()),
        )?;
        let request_bytes = request.arguments.len() as u64;
        let max = self.limits.max_tool_arg_bytes;
        let mut slot = if request_bytes > max {
            let response = ToolResponse::limit(
                format!(
                    "the arguments of {client}.{tool} are {request_bytes} bytes of JSON, over \
                     the limit of {max}; send less per call"
                ),
                LimitKind::MaxToolArgBytes,
                max,
                request_bytes,
            );
            self.fired.push(LimitKind::MaxToolArgBytes);
            Slot::ready(client, tool, request_bytes, &response)
        } else {
            match parse_arguments(request.arguments, &client, &tool, memory) {
                Ok((arguments, charged)) => {
                    let mut slot = self.dispatch(client, tool, arguments, request_bytes);
                    slot.charged = charged;
                    slot
                }
                Err(response) => Slot::ready(client, tool, request_bytes, &response),
            }
        };
        if let State::Ready(response) = &slot.state {
            let len = response.bytes.len();
            slot.charge_response(len, memory);
        }
        slot.started_ms = slot.started.duration_since(self.origin).as_secs_f64() * 1e3;
        let id = self.slots.len();
        if let State::Running(_) = slot.state {
            self.running.push(id);
        }
        self.slots.push(slot);
        Ok(id)
    }

    fn dispatch(&self, client: String, tool: String, arguments: Value, request_bytes: u64) -> Slot {
        let dispatcher = Arc::clone(&self.dispatcher);
        let (call_client, call_tool) = (client.clone(), tool.clone());
        let started = Instant::now();
        let future: CallFuture = Box::pin(async move {
            let answer = dispatcher.call(&call_client, &call_tool, arguments).await;
            (answer, started.elapsed())
        });
        Slot::new(client, tool, request_bytes, State::Running(future))
    }

    /// Polls call `id` once, if it is running.
    pub(crate) fn poll_one(&mut self, id: usize, cx: &mut Context<'_>, memory: &mut RunMemory) {
        let limits = self.limits;
        if let Some(slot) = self.slots.get_mut(id)
            && let Some(limit) = slot.poll(cx, &limits, memory)
        {
            self.fired.push(limit);
        }
    }

    /// Polls every running call; ready when call `id` has its answer.
    pub(crate) fn poll_until_answered(
        &mut self,
        id: usize,
        cx: &mut Context<'_>,
        memory: &mut RunMemory,
    ) -> Poll<Result<(), ProtocolError>> {
        let (limits, slots, fired) = (self.limits, &mut self.slots, &mut self.fired);
        self.running.retain(|&running| {
            let Some(slot) = slots.get_mut(running) else {
                return false;
            };
            fired.extend(slot.poll(cx, &limits, memory));
            matches!(slot.state, State::Running(_))
        });
        match self.slots.get(id).map(|slot| &slot.state) {
            None => Poll::Ready(Err(ProtocolError(format!("unknown tool call id {id}")))),
            Some(State::Running(_)) => Poll::Pending,
            Some(_) => Poll::Ready(Ok(())),
        }
    }

    /// Records answered call `id` (the script learns its outcome now) and returns the length of
    /// its response. A call collected before answers with an error response.
    pub(crate) fn respond(&mut self, id: usize) -> Result<usize, ProtocolError> {
        let slot = self
            .slots
            .get_mut(id)
            .ok_or_else(|| ProtocolError(format!("unknown tool call id {id}")))?;
        if let State::Collected = slot.state {
            let response = failure(&ToolError::InvalidArguments(format!(
                "tool call {id} was already collected"
            )));
            slot.state = State::Ready(Encoded::new(&response));
        }
        match &slot.state {
            State::Ready(response) => {
                if slot.record.is_none() {
                    slot.record = Some(slot_record(slot, response));
                }
                Ok(response.bytes.len())
            }
            _ => Err(ProtocolError(format!(
                "tool call {id} has not answered yet"
            ))),
        }
    }

    /// Takes the response of call `id`, which must be exactly `len` bytes long; the host holds
    /// it no longer. A length of 0 discards it: the guest had no memory to read it into.
    pub(crate) fn take_response(
        &mut self,
        id: usize,
        len: usize,
        memory: &mut RunMemory,
    ) -> Result<Vec<u8>, ProtocolError> {
        let slot = self
            .slots
            .get_mut(id)
            .ok_or_else(|| ProtocolError(format!("unknown tool call id {id}")))?;
        let State::Ready(response) = &slot.state else {
            return Err(ProtocolError(format!(
                "tool call {id} has no response to read"
            )));
        };
        if len != 0 && response.bytes.len() != len {
            return Err(ProtocolError(format!(
                "tool call {id}: a buffer of {len} bytes for a {}-byte response",
                response.bytes.len()
            )));
        }
        let State::Ready(response) = std::mem::replace(&mut slot.state, State::Collected) else {
            return Err(ProtocolError(format!("tool call {id} changed state")));
        };
        memory.release(std::mem::take(&mut slot.charged));
        Ok(if len == 0 { Vec::new() } else { response.bytes })
    }

    /// The records of every call, in start order. Calls the script never collected are recorded
    /// with their outcome when they had one (their effects happened), else as `Cancelled`; the
    /// ones still in flight are cancelled when `self` is dropped.
    pub(crate) fn into_records(self) -> Vec<CallRecord> {
        self.slots
            .into_iter()
            .map(|slot| match (&slot.record, &slot.state) {
                (Some(record), _) => record.clone(),
                (None, State::Ready(response)) => slot_record(&slot, response),
                (None, _) => {
                    let cancelled = Encoded {
                        bytes: Vec::new(),
                        error: Some(ErrorKind::Cancelled),
                    };
                    let mut record = slot_record(&slot, &cancelled);
                    record.duration_ms = slot.started.elapsed().as_secs_f64() * 1e3;
                    record
                }
            })
            .collect()
    }
}

impl Slot {
    fn new(client: String, tool: String, request_bytes: u64, state: State) -> Slot {
        Slot {
            client,
            tool,
            request_bytes,
            started: Instant::now(),
            started_ms: 0.0,
            duration: Duration::ZERO,
            state,
            charged: 0,
            record: None,
        }
    }

    /// A call answered before it was sent.
    fn ready(client: String, tool: String, request_bytes: u64, response: &ToolResponse) -> Slot {
        Slot::new(
            client,
            tool,
            request_bytes,
            State::Ready(Encoded::new(response)),
        )
    }

    /// Polls a running call; once it answers, encodes the answer for the guest and moves the
    /// charge from its arguments to its response. Returns the per-call limit the answer fired.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        limits: &Limits,
        memory: &mut RunMemory,
    ) -> Option<LimitKind> {
        let State::Running(future) = &mut self.state else {
            return None;
        };
        let Poll::Ready((answer, duration)) = future.as_mut().poll(cx) else {
            return None;
        };
        // The future, and the arguments it held, are gone.
        memory.release(std::mem::take(&mut self.charged));
        let (response, fired) = encoded_answer(&answer, &self.client, &self.tool, limits);
        drop(answer);
        self.duration = duration;
        let len = response.bytes.len();
        self.state = State::Ready(response);
        self.charge_response(len, memory);
        fired
    }

    /// Charges this call's response of `len` bytes to the run's memory; one that does not fit
    /// is replaced by a `MemoryError` the script can catch.
    fn charge_response(&mut self, len: usize, memory: &mut RunMemory) {
        if let Err(over) = memory.charge(len) {
            let message = format!(
                "the answer of {}.{} is {len} bytes, more than the {} bytes the run's memory \
                 limit has left; ask the tool for less, or read earlier answers first",
                self.client, self.tool, over.available
            );
            let response = Encoded::new(&ToolResponse::failure(ErrorKind::MemoryError, message));
            // An error message: small enough to keep without a charge.
            self.state = State::Ready(response);
            return;
        }
        self.charged = len;
    }
}

/// The arguments of a call parsed within what the run's memory has left, and the bytes charged
/// for them; or the response that refuses the call.
fn parse_arguments(
    text: &[u8],
    client: &str,
    tool: &str,
    memory: &mut RunMemory,
) -> Result<(Value, usize), ToolResponse> {
    if text.is_empty() {
        return Ok((Value::Object(Default::default()), 0));
    }
    let available = memory.available();
    let (value, used) = match bounded_json::parse(text, available) {
        Ok(parsed) => parsed,
        Err(ParseError::OverBudget { budget }) => {
            // Marks the memory limit as fired: the script's MemoryError is the limit's.
            let _ = memory.charge(budget.saturating_add(1));
            let message = format!(
                "the arguments of {client}.{tool} need more than the {budget} bytes of memory \
                 the run's memory limit has left; send less per call"
            );
            return Err(ToolResponse::failure(ErrorKind::MemoryError, message));
        }
        Err(ParseError::Invalid(error)) => {
            return Err(failure(&ToolError::InvalidArguments(format!(
                "the arguments of {client}.{tool} are not readable JSON: {error}"
            ))));
        }
    };
    match value {
        Value::Null => Ok((Value::Object(Default::default()), 0)),
        Value::Object(map) => match memory.charge(used) {
            Ok(()) => Ok((Value::Object(map), used)),
            Err(over) => Err(ToolResponse::failure(
                ErrorKind::MemoryError,
                format!(
                    "the arguments of {client}.{tool} need {used} bytes of memory, more than \
                     the {} the run's memory limit has left",
                    over.available
                ),
            )),
        },
        other => Err(failure(&ToolError::InvalidArguments(format!(
            "arguments of {client}.{tool} must be an object of parameter names to values, not {}",
            json_kind(&other)
        )))),
    }
}

/// The record of `slot`, whose response to the guest is `response`.
fn slot_record(slot: &Slot, response: &Encoded) -> CallRecord {
    CallRecord {
        client: slot.client.clone(),
        tool: slot.tool.clone(),
        ok: response.error.is_none(),
        error_type: response.error,
        started_ms: slot.started_ms,
        duration_ms: slot.duration.as_secs_f64() * 1e3,
        request_bytes: slot.request_bytes,
        response_bytes: response.bytes.len() as u64,
    }
}

/// The response the guest receives for an answered call, encoded once: its size is what the
/// result limit compares. Also the per-call limit it fired, if it did.
fn encoded_answer(
    answer: &Result<Value, ToolError>,
    client: &str,
    tool: &str,
    limits: &Limits,
) -> (Encoded, Option<LimitKind>) {
    let value = match answer {
        Err(error) => return (Encoded::new(&failure(error)), None),
        Ok(value) => value,
    };
    let bytes = encode_ok(value);
    let size = bytes.len() as u64;
    if size <= limits.max_tool_result_bytes {
        return (Encoded { bytes, error: None }, None);
    }
    let response = ToolResponse::limit(
        format!(
            "the result of {client}.{tool} is {size} bytes, over the limit of {}; ask the tool for less",
            limits.max_tool_result_bytes
        ),
        LimitKind::MaxToolResultBytes,
        limits.max_tool_result_bytes,
        size,
    );
    (Encoded::new(&response), Some(LimitKind::MaxToolResultBytes))
}

fn failure(error: &ToolError) -> ToolResponse {
    let mut response = ToolResponse::failure(error.kind(), error.to_string());
    if let (ToolResponse::Error(failure), ToolError::AuthRequired { authorize_url, .. }) =
        (&mut response, error)
    {
        failure.authorize_url = Some(authorize_url.clone());
    }
    response
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

/// The UTF-8 `name`, cut to [`MAX_RECORDED_NAME_BYTES`] with a marker saying so. Only what is
/// kept is copied: a 5 MB name costs the host 256 bytes.
fn bounded(name: &[u8]) -> String {
    if name.len() <= MAX_RECORDED_NAME_BYTES {
        return String::from_utf8_lossy(name).into_owned();
    }
    let kept = &name[..MAX_RECORDED_NAME_BYTES];
    // A cut through a character drops its start rather than mangling it.
    let kept = match std::str::from_utf8(kept) {
        Ok(text) => text.to_string(),
        Err(error) if error.error_len().is_none() => {
            String::from_utf8_lossy(&kept[..error.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(kept).into_owned(),
    };
    format!("{kept}…({} bytes)", name.len())
}
