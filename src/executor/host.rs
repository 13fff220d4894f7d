//! The host side of the guest boundary: per-execution state and the `codemode` import module.
//!
//! The guest imports six functions (see `sandbox/src/host.rs` for its side):
//!
//! | import | does |
//! |---|---|
//! | `output(stream, ptr, len)` | appends to the capped stdout/stderr capture |
//! | `result(ptr, len)` | hands over the run's outcome (JSON), once |
//! | `tool_start(client, client_len, tool, tool_len, args, args_len) -> id` | starts a call ([`Calls`]): names as UTF-8, arguments as JSON, each sized before it is read |
//! | `tool_wait(id) -> len` | drives calls until `id` has answered; returns its response length |
//! | `tool_read(id, ptr, len)` | copies that response into guest memory (a length of 0 drops it: the guest had no room) |
//! | `panic(ptr, len)` | the interpreter's last words before it aborts (kept, cut to 4 KiB) |
//!
//! Pointers and lengths come from hostile code: every access goes through [`guest_slice`], which
//! checks bounds, and no guest value can make the host panic. Limits that protect the host
//! (the number of calls, the size of the outcome) end the run by recording a [`Fault`] and
//! trapping; limits on one call's size answer that call with a `LimitExceeded` error instead, so
//! the script may recover.

use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use wasmtime::{Caller, Linker, Memory};
use wasmtime_wasi::p1::WasiP1Ctx;

use super::calls::{CallRequest, Calls};
use super::dispatch::ToolDispatcher;
use super::limits::Limits;
use super::memory::RunMemory;
use super::output::{CapturedOutput, Stream};
use super::protocol::LimitKind;

/// Name of the host module the guest imports.
const MODULE: &str = "codemode";

/// Room in the outcome JSON for the error, traceback and framing around the result itself (the
/// guest cuts an error's message and traceback to 64 KiB each).
const OUTCOME_OVERHEAD_BYTES: u64 = 256 << 10;

/// The most of a panic message the host keeps.
const MAX_PANIC_BYTES: usize = 4 << 10;

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
    pub(crate) memory_use: RunMemory,
    pub(crate) limits: Limits,
    pub(crate) deadline: Instant,
    pub(crate) memory: Option<Memory>,
    pub(crate) output: CapturedOutput,
    pub(crate) outcome: Option<Vec<u8>>,
    pub(crate) fault: Option<Fault>,
    pub(crate) calls: Calls,
    /// What the interpreter said when it panicked, if it did.
    pub(crate) panic: Option<String>,
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
            memory_use: RunMemory::new(limits.memory_bytes()),
            limits,
            deadline,
            memory: None,
            output: CapturedOutput::new(limits.max_output_bytes),
            outcome: None,
            fault: None,
            calls: Calls::new(dispatcher, limits),
            panic: None,
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

/// Adds the `codemode` host module to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "output", output)?;
    linker.func_wrap(MODULE, "result", result)?;
    linker.func_wrap_async(
        MODULE,
        "tool_start",
        |caller, (client, client_len, tool, tool_len, args, args_len): (i32, i32, i32, i32, i32, i32)| {
            let request = [(client, client_len), (tool, tool_len), (args, args_len)];
            Box::new(tool_start(caller, request))
        },
    )?;
    linker.func_wrap_async(MODULE, "tool_wait", |caller, (id,): (i32,)| {
        Box::new(tool_wait(caller, id))
    })?;
    linker.func_wrap(MODULE, "tool_read", tool_read)?;
    linker.func_wrap(MODULE, "panic", panic)?;
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

/// The guest buffers `[ptr, ptr + len)` of `buffers`, bounds-checked, with the host state.
fn guest_slices<'a, const N: usize>(
    caller: &'a mut Caller<'_, HostState>,
    buffers: [(i32, i32); N],
) -> wasmtime::Result<([&'a [u8]; N], &'a mut HostState)> {
    let Some(memory) = caller.data().memory else {
        return Err(caller
            .data_mut()
            .abi_fault("the guest has no memory".into()));
    };
    let (data, state) = memory.data_and_store_mut(caller);
    let data: &'a [u8] = data;
    let mut slices = [&data[..0]; N];
    for (slice, (ptr, len)) in slices.iter_mut().zip(buffers) {
        let range =
            (ptr as u32 as usize)..(ptr as u32 as usize).saturating_add(len as u32 as usize);
        match data.get(range.clone()) {
            Some(bytes) => *slice = bytes,
            None => {
                return Err(
                    state.abi_fault(format!("guest buffer {range:?} is outside its memory"))
                );
            }
        }
    }
    Ok((slices, state))
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
    request: [(i32, i32); 3],
) -> wasmtime::Result<i32> {
    let limit = caller.data().limits.max_tool_calls;
    if caller.data().calls.started() as u64 >= limit {
        let message =
            format!("the script started more than {limit} tool calls, the limit of one run");
        return Err(caller
            .data_mut()
            .limit_fault(LimitKind::MaxToolCalls, message));
    }
    let ([client, tool, arguments], state) = guest_slices(&mut caller, request)?;
    let request = CallRequest {
        client,
        tool,
        arguments,
    };
    let Ok(id) = state.calls.start(request, &mut state.memory_use) else {
        let message = format!(
            "the script's tool calls filled its memory limit of {} MiB",
            state.limits.memory_mb
        );
        return Err(state.limit_fault(LimitKind::MemoryMb, message));
    };
    // Poll the new call once so its request leaves now, not when the script first waits.
    let state = caller.data_mut();
    std::future::poll_fn(|cx| {
        state.calls.poll_one(id, cx, &mut state.memory_use);
        Poll::Ready(())
    })
    .await;
    i32::try_from(id).map_err(|_| wasmtime::Error::msg("too many calls"))
}

async fn tool_wait(mut caller: Caller<'_, HostState>, id: i32) -> wasmtime::Result<i32> {
    let id = id as u32 as usize;
    let state = caller.data_mut();
    let answered = std::future::poll_fn(|cx| {
        state
            .calls
            .poll_until_answered(id, cx, &mut state.memory_use)
    })
    .await;
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
    let id = id as u32 as usize;
    match state
        .calls
        .take_response(id, buffer.len(), &mut state.memory_use)
    {
        Ok(response) => {
            buffer.copy_from_slice(&response);
            Ok(())
        }
        Err(error) => Err(state.abi_fault(error.to_string())),
    }
}

/// Keeps the start of the interpreter's panic message; the abort that follows ends the run.
fn panic(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let len = len.clamp(0, MAX_PANIC_BYTES as i32);
    let (bytes, state) = guest_slice(&mut caller, ptr, len)?;
    let message = String::from_utf8_lossy(bytes).into_owned();
    state.panic.get_or_insert(message);
    Ok(())
}
