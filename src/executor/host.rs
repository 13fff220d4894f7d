//! The host side of the guest boundary: per-execution state and the `codemode` import module.
//!
//! The guest imports five functions (see `sandbox/src/host.rs` for its side):
//!
//! | import | does |
//! |---|---|
//! | `output(stream, ptr, len)` | appends to the capped stdout/stderr capture |
//! | `result(ptr, len)` | hands over the run's outcome (JSON), once |
//! | `tool_start(ptr, len) -> id` | parses a JSON request, counts it, starts it concurrently |
//! | `tool_wait(id) -> len` | awaits the call, builds the JSON response, returns its length |
//! | `tool_read(id, ptr, len)` | copies that response into guest memory |
//!
//! Pointers and lengths come from hostile code: every access goes through [`guest_slice`], which
//! checks bounds, and no guest value can make the host panic. Limits that protect the host
//! (the number of calls, the size of the outcome) end the run by recording a [`Fault`] and
//! trapping; limits on one call's size answer that call with a `LimitExceeded` error instead, so
//! the script may recover.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use wasmtime::{Caller, Linker, Memory, ResourceLimiter};
use wasmtime_wasi::p1::WasiP1Ctx;

use super::dispatch::{ToolDispatcher, ToolError};
use super::limits::Limits;
use super::outcome::CallRecord;
use super::output::{CapturedOutput, Stream};

/// Name of the host module the guest imports.
const MODULE: &str = "codemode";

/// Room in the outcome JSON for the error, traceback and framing around the result itself.
const OUTCOME_OVERHEAD_BYTES: u64 = 1 << 20;

/// A limit that ended the run from the host side.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fault {
    /// The wall-clock deadline passed.
    Timeout,
    /// A counted or sized limit was exceeded.
    Limit { name: &'static str, message: String },
    /// The guest broke the ABI (a bad pointer, an unknown call id). Only hostile code does this.
    Abi(String),
}

/// Everything one execution's store holds.
pub(crate) struct HostState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) limits: Limits,
    pub(crate) deadline: Instant,
    pub(crate) memory: Option<Memory>,
    pub(crate) output: CapturedOutput,
    pub(crate) outcome: Option<Vec<u8>>,
    pub(crate) fault: Option<Fault>,
    /// One entry per started call, by call id; filled when the call's outcome is known.
    pub(crate) records: Vec<Option<CallRecord>>,
    calls: Vec<CallSlot>,
    dispatcher: Arc<dyn ToolDispatcher>,
}

impl HostState {
    pub(crate) fn new(
        wasi: WasiP1Ctx,
        limits: Limits,
        deadline: Instant,
        dispatcher: Arc<dyn ToolDispatcher>,
    ) -> Self {
        HostState {
            wasi,
            limiter: MemoryLimiter::new(limits.memory_bytes()),
            limits,
            deadline,
            memory: None,
            output: CapturedOutput::new(limits.max_output_bytes),
            outcome: None,
            fault: None,
            records: Vec::new(),
            calls: Vec::new(),
            dispatcher,
        }
    }

    /// Records the calls whose outcome the script never collected, in start order. Finished ones
    /// are recorded with their real outcome (their side effects happened); the others, still
    /// running or abandoned by a run cut short while waiting, are cancelled.
    pub(crate) async fn settle_calls(&mut self) {
        for (index, slot) in self.calls.iter_mut().enumerate() {
            if self.records[index].is_some() {
                continue;
            }
            let state = std::mem::replace(&mut slot.state, CallState::Collected);
            let record = match state {
                CallState::Running(task) if task.0.is_finished() => {
                    let (answer, duration) = task.finish().await;
                    let response = response_json(&answer, &slot.client, &slot.tool, &self.limits);
                    slot.record(&answer_type(&answer, &response), duration, response.len())
                }
                _ => slot.record(&Some("Cancelled".into()), slot.started.elapsed(), 0),
            };
            self.records[index] = Some(record);
        }
    }
}

/// Refuses memory growth past the limit (the guest then sees `MemoryError`) and remembers that it
/// did, and the peak size, for the run's result.
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    pub(crate) peak_bytes: usize,
    pub(crate) refused: bool,
}

impl MemoryLimiter {
    fn new(max_bytes: usize) -> Self {
        MemoryLimiter {
            max_bytes,
            peak_bytes: 0,
            refused: false,
        }
    }
}

/// Tables hold function references; RustPython's needs a few thousand entries.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 1 << 16;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    // One module, one instance, one memory, one table: nothing more may ever be created.
    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// One started tool call.
struct CallSlot {
    client: String,
    tool: String,
    request_bytes: u64,
    started: Instant,
    state: CallState,
}

enum CallState {
    /// Dispatched; the answer is not collected yet.
    Running(CallTask),
    /// Answered (or refused before dispatch); the JSON response waits for `tool_read`.
    Ready(Vec<u8>),
    /// The response has been read by the guest.
    Collected,
}

/// A dispatched call. Dropping it (the run ended) cancels the call.
struct CallTask(JoinHandle<(Result<Value, ToolError>, Duration)>);

impl CallTask {
    async fn finish(mut self) -> (Result<Value, ToolError>, Duration) {
        match (&mut self.0).await {
            Ok(answer) => answer,
            Err(error) => (
                Err(ToolError::Failed(format!(
                    "the tool call did not complete: {error}"
                ))),
                Duration::ZERO,
            ),
        }
    }
}

impl Drop for CallTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl CallSlot {
    fn record(
        &self,
        error_type: &Option<String>,
        duration: Duration,
        response_bytes: usize,
    ) -> CallRecord {
        CallRecord {
            client: self.client.clone(),
            tool: self.tool.clone(),
            ok: error_type.is_none(),
            error_type: error_type.clone(),
            duration_ms: duration.as_secs_f64() * 1e3,
            request_bytes: self.request_bytes,
            response_bytes: response_bytes as u64,
        }
    }
}

/// The request the guest sends to `tool_start`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolRequest {
    client: String,
    tool: String,
    #[serde(default)]
    arguments: Value,
}

/// Adds the `codemode` host module to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "output", output)?;
    linker.func_wrap(MODULE, "result", result)?;
    linker.func_wrap(MODULE, "tool_start", tool_start)?;
    linker.func_wrap_async(MODULE, "tool_wait", |caller, (id,): (i32,)| {
        Box::new(tool_wait(caller, id))
    })?;
    linker.func_wrap(MODULE, "tool_read", tool_read)?;
    Ok(())
}

/// Ends the run because the guest broke the ABI.
fn abi_fault(caller: &mut Caller<'_, HostState>, message: String) -> wasmtime::Error {
    caller.data_mut().fault = Some(Fault::Abi(message.clone()));
    wasmtime::Error::msg(message)
}

/// Ends the run because a run-wide limit was exceeded.
fn limit_fault(
    caller: &mut Caller<'_, HostState>,
    name: &'static str,
    message: String,
) -> wasmtime::Error {
    caller.data_mut().fault = Some(Fault::Limit {
        name,
        message: message.clone(),
    });
    wasmtime::Error::msg(message)
}

/// Bounds-checked view of guest memory `[ptr, ptr + len)`, with the host state beside it.
fn guest_slice<'a>(
    caller: &'a mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<(&'a mut [u8], &'a mut HostState)> {
    let Some(memory) = caller.data().memory else {
        return Err(abi_fault(caller, "the guest has no memory".into()));
    };
    let range = (ptr as u32 as usize)..(ptr as u32 as usize).saturating_add(len as u32 as usize);
    let (data, state) = memory.data_and_store_mut(caller);
    match data.get_mut(range.clone()) {
        Some(bytes) => Ok((bytes, state)),
        None => {
            let message = format!("guest buffer {range:?} is outside its memory");
            state.fault = Some(Fault::Abi(message.clone()));
            Err(wasmtime::Error::msg(message))
        }
    }
}

fn output(
    mut caller: Caller<'_, HostState>,
    stream: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<()> {
    let stream = match stream {
        1 => Stream::Stdout,
        2 => Stream::Stderr,
        other => {
            return Err(abi_fault(
                &mut caller,
                format!("unknown output stream {other}"),
            ));
        }
    };
    let (bytes, state) = guest_slice(&mut caller, ptr, len)?;
    state.output.write(stream, bytes);
    Ok(())
}

fn result(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let allowed = caller
        .data()
        .limits
        .max_result_bytes
        .saturating_add(OUTCOME_OVERHEAD_BYTES);
    if u64::from(len as u32) > allowed {
        let message = format!(
            "the script's outcome is {} bytes, over the limit of {allowed}",
            len as u32
        );
        return Err(limit_fault(&mut caller, "max_result_bytes", message));
    }
    let (bytes, state) = guest_slice(&mut caller, ptr, len)?;
    state.outcome = Some(bytes.to_vec());
    Ok(())
}

fn tool_start(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<i32> {
    let state = caller.data();
    let limit = state.limits.max_tool_calls;
    if state.calls.len() as u64 >= limit {
        let message =
            format!("the script started more than {limit} tool calls, the limit of one run");
        return Err(limit_fault(&mut caller, "max_tool_calls", message));
    }
    let (bytes, state) = guest_slice(&mut caller, ptr, len)?;
    let request_bytes = bytes.len() as u64;
    let parsed = serde_json::from_slice::<ToolRequest>(bytes);
    let id = state.calls.len();
    let started = Instant::now();
    let slot = match parsed {
        Err(error) => refused_slot(
            "?",
            "?",
            request_bytes,
            &ToolError::InvalidArguments(format!("malformed tool request: {error}")),
        ),
        Ok(request) => {
            if request_bytes > state.limits.max_tool_arg_bytes {
                let error = json!({"error": {
                    "type": "LimitExceeded",
                    "message": format!(
                        "the request to {}.{} is {request_bytes} bytes, over the limit of {}; send less per call",
                        request.client, request.tool, state.limits.max_tool_arg_bytes),
                    "limit": "max_tool_arg_bytes",
                    "allowed": state.limits.max_tool_arg_bytes,
                    "observed": request_bytes,
                }});
                ready_slot(
                    request.client,
                    request.tool,
                    request_bytes,
                    error.to_string(),
                )
            } else {
                dispatch(state, request, request_bytes, started)
            }
        }
    };
    state.calls.push(slot);
    state.records.push(None);
    i32::try_from(id).map_err(|_| wasmtime::Error::msg("too many calls"))
}

fn dispatch(
    state: &HostState,
    request: ToolRequest,
    request_bytes: u64,
    started: Instant,
) -> CallSlot {
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
            return refused_slot(&request.client, &request.tool, request_bytes, &error);
        }
    };
    let dispatcher = Arc::clone(&state.dispatcher);
    let (client, tool) = (request.client.clone(), request.tool.clone());
    let task = tokio::spawn(async move {
        let answer = dispatcher.call(&client, &tool, arguments).await;
        (answer, started.elapsed())
    });
    CallSlot {
        client: request.client,
        tool: request.tool,
        request_bytes,
        started,
        state: CallState::Running(CallTask(task)),
    }
}

fn refused_slot(client: &str, tool: &str, request_bytes: u64, error: &ToolError) -> CallSlot {
    let response = error_json(error);
    ready_slot(client.into(), tool.into(), request_bytes, response)
}

fn ready_slot(client: String, tool: String, request_bytes: u64, response: String) -> CallSlot {
    CallSlot {
        client,
        tool,
        request_bytes,
        started: Instant::now(),
        state: CallState::Ready(response.into_bytes()),
    }
}

async fn tool_wait(mut caller: Caller<'_, HostState>, id: i32) -> wasmtime::Result<i32> {
    let index = id as u32 as usize;
    let state = caller.data_mut();
    let Some(slot) = state.calls.get_mut(index) else {
        return Err(abi_fault(&mut caller, format!("unknown tool call id {id}")));
    };
    let response = match std::mem::replace(&mut slot.state, CallState::Collected) {
        CallState::Running(task) => {
            let (answer, duration) = task.finish().await;
            let state = caller.data_mut();
            let limits = state.limits;
            let Some(slot) = state.calls.get_mut(index) else {
                return Err(wasmtime::Error::msg("call slot vanished"));
            };
            let response = response_json(&answer, &slot.client, &slot.tool, &limits);
            let record = slot.record(&answer_type(&answer, &response), duration, response.len());
            state.records[index] = Some(record);
            response.into_bytes()
        }
        CallState::Ready(response) => {
            // Refused before dispatch: record it now, when the script learns of it.
            let text = String::from_utf8_lossy(&response).into_owned();
            let error_type = error_type_of(&text);
            let record = slot.record(&error_type, Duration::ZERO, response.len());
            state.records[index] = Some(record);
            response
        }
        CallState::Collected => {
            let message = format!("tool call {id} was already collected");
            error_json(&ToolError::InvalidArguments(message)).into_bytes()
        }
    };
    let len =
        i32::try_from(response.len()).map_err(|_| wasmtime::Error::msg("response too large"))?;
    if let Some(slot) = caller.data_mut().calls.get_mut(index) {
        slot.state = CallState::Ready(response);
    }
    Ok(len)
}

fn tool_read(
    mut caller: Caller<'_, HostState>,
    id: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<()> {
    let index = id as u32 as usize;
    let (buffer, state) = guest_slice(&mut caller, ptr, len)?;
    let Some(slot) = state.calls.get_mut(index) else {
        let message = format!("unknown tool call id {id}");
        state.fault = Some(Fault::Abi(message.clone()));
        return Err(wasmtime::Error::msg(message));
    };
    let CallState::Ready(response) = std::mem::replace(&mut slot.state, CallState::Collected)
    else {
        let message = format!("tool call {id} has no response to read");
        state.fault = Some(Fault::Abi(message.clone()));
        return Err(wasmtime::Error::msg(message));
    };
    if response.len() != buffer.len() {
        let message = format!(
            "tool call {id}: buffer of {} bytes for a {}-byte response",
            buffer.len(),
            response.len()
        );
        state.fault = Some(Fault::Abi(message.clone()));
        return Err(wasmtime::Error::msg(message));
    }
    buffer.copy_from_slice(&response);
    Ok(())
}

/// The JSON response the guest receives for a finished call.
fn response_json(
    answer: &Result<Value, ToolError>,
    client: &str,
    tool: &str,
    limits: &Limits,
) -> String {
    match answer {
        Err(error) => error_json(error),
        Ok(value) => {
            let response = json!({ "ok": value }).to_string();
            let size = response.len() as u64;
            if size > limits.max_tool_result_bytes {
                json!({"error": {
                    "type": "LimitExceeded",
                    "message": format!(
                        "the result of {client}.{tool} is {size} bytes, over the limit of {}; ask the tool for less",
                        limits.max_tool_result_bytes),
                    "limit": "max_tool_result_bytes",
                    "allowed": limits.max_tool_result_bytes,
                    "observed": size,
                }})
                .to_string()
            } else {
                response
            }
        }
    }
}

fn error_json(error: &ToolError) -> String {
    json!({"error": {"type": error.python_type(), "message": error.to_string()}}).to_string()
}

/// The Python exception type a response carries, `None` for success.
fn answer_type(answer: &Result<Value, ToolError>, response: &str) -> Option<String> {
    match answer {
        Err(error) => Some(error.python_type().to_string()),
        Ok(_) => error_type_of(response),
    }
}

fn error_type_of(response: &str) -> Option<String> {
    let value: Value = serde_json::from_str(response).ok()?;
    value.get("error").map(|e| {
        e.get("type")
            .and_then(Value::as_str)
            .unwrap_or("ToolError")
            .to_string()
    })
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
