//! The host side of the guest boundary: per-execution state and the `codemode` import module.
//!
//! The guest imports five functions (see `sandbox/src/host.rs` for its side):
//!
//! | import | does |
//! |---|---|
//! | `output(stream, ptr, len)` | appends to the capped stdout/stderr capture |
//! | `result(ptr, len)` | hands over the run's outcome (JSON), once |
//! | `tool_start(ptr, len) -> id` | counts a JSON request and starts it ([`Calls`]) |
//! | `tool_wait(id) -> len` | drives calls until `id` has answered; returns its response length |
//! | `tool_read(id, ptr, len)` | copies that response into guest memory |
//!
//! Pointers and lengths come from hostile code: every access goes through [`guest_slice`], which
//! checks bounds, and no guest value can make the host panic. Limits that protect the host
//! (the number of calls, the size of the outcome) end the run by recording a [`Fault`] and
//! trapping; limits on one call's size answer that call with a `LimitExceeded` error instead, so
//! the script may recover.

use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use wasmtime::{Caller, Linker, Memory, ResourceLimiter};
use wasmtime_wasi::p1::WasiP1Ctx;

use super::calls::Calls;
use super::dispatch::ToolDispatcher;
use super::limits::Limits;
use super::output::{CapturedOutput, Stream};
use super::protocol::LimitKind;

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
    Limit { kind: LimitKind, message: String },
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
    pub(crate) calls: Calls,
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
            calls: Calls::new(dispatcher, limits),
        }
    }

    /// Ends the run because the guest broke the ABI; the returned error traps.
    fn abi_fault(&mut self, message: String) -> wasmtime::Error {
        self.fault = Some(Fault::Abi(message.clone()));
        wasmtime::Error::msg(message)
    }

    /// Ends the run because a run-wide limit was exceeded; the returned error traps.
    fn limit_fault(&mut self, kind: LimitKind, message: String) -> wasmtime::Error {
        self.fault = Some(Fault::Limit {
            kind,
            message: message.clone(),
        });
        wasmtime::Error::msg(message)
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

/// Adds the `codemode` host module to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "output", output)?;
    linker.func_wrap(MODULE, "result", result)?;
    linker.func_wrap_async(MODULE, "tool_start", |caller, (ptr, len): (i32, i32)| {
        Box::new(tool_start(caller, ptr, len))
    })?;
    linker.func_wrap_async(MODULE, "tool_wait", |caller, (id,): (i32,)| {
        Box::new(tool_wait(caller, id))
    })?;
    linker.func_wrap(MODULE, "tool_read", tool_read)?;
    Ok(())
}

/// Bounds-checked view of guest memory `[ptr, ptr + len)`, with the host state beside it.
fn guest_slice<'a>(
    caller: &'a mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<(&'a mut [u8], &'a mut HostState)> {
    let Some(memory) = caller.data().memory else {
        return Err(caller
            .data_mut()
            .abi_fault("the guest has no memory".into()));
    };
    let range = (ptr as u32 as usize)..(ptr as u32 as usize).saturating_add(len as u32 as usize);
    let (data, state) = memory.data_and_store_mut(caller);
    match data.get_mut(range.clone()) {
        Some(bytes) => Ok((bytes, state)),
        None => Err(state.abi_fault(format!("guest buffer {range:?} is outside its memory"))),
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
            return Err(caller
                .data_mut()
                .abi_fault(format!("unknown output stream {other}")));
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
        return Err(caller
            .data_mut()
            .limit_fault(LimitKind::MaxResultBytes, message));
    }
    let (bytes, state) = guest_slice(&mut caller, ptr, len)?;
    state.outcome = Some(bytes.to_vec());
    Ok(())
}

async fn tool_start(
    mut caller: Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<i32> {
    let limit = caller.data().limits.max_tool_calls;
    if caller.data().calls.started() as u64 >= limit {
        let message =
            format!("the script started more than {limit} tool calls, the limit of one run");
        return Err(caller
            .data_mut()
            .limit_fault(LimitKind::MaxToolCalls, message));
    }
    let (request, state) = guest_slice(&mut caller, ptr, len)?;
    let id = state.calls.start(request);
    // Poll the new call once so its request leaves now, not when the script first waits.
    let calls = &mut caller.data_mut().calls;
    std::future::poll_fn(|cx| {
        calls.poll_one(id, cx);
        Poll::Ready(())
    })
    .await;
    i32::try_from(id).map_err(|_| wasmtime::Error::msg("too many calls"))
}

async fn tool_wait(mut caller: Caller<'_, HostState>, id: i32) -> wasmtime::Result<i32> {
    let id = id as u32 as usize;
    let calls = &mut caller.data_mut().calls;
    let answered = std::future::poll_fn(|cx| calls.poll_until_answered(id, cx)).await;
    let responded = answered.and_then(|()| caller.data_mut().calls.respond(id));
    match responded {
        Ok(len) => i32::try_from(len).map_err(|_| wasmtime::Error::msg("response too large")),
        Err(error) => Err(caller.data_mut().abi_fault(error.to_string())),
    }
}

fn tool_read(
    mut caller: Caller<'_, HostState>,
    id: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<()> {
    let (buffer, state) = guest_slice(&mut caller, ptr, len)?;
    match state.calls.take_response(id as u32 as usize, buffer.len()) {
        Ok(response) => {
            buffer.copy_from_slice(&response);
            Ok(())
        }
        Err(error) => Err(state.abi_fault(error.to_string())),
    }
}
