//! One execution: a fresh instance from the snapshot, the script, and what came of it.
//!
//! The outcome is decided in this order: a host [`Fault`] (deadline, run-wide limit, ABI
//! breach) wins, because the guest may not have had the chance to report anything; then a
//! trap (stack exhaustion, memory refused, interpreter crash); then the guest's own report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_json::value::RawValue;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use super::host::{Fault, HostState};
use super::outcome::{RunError, RunResult, RunStats};
use super::output::Stream;
use super::protocol::{ErrorKind, GuestError, GuestOutcome, LimitKind};
use super::{ExecuteError, Inner, Limits, ToolDispatcher};

/// Which guest export an execution calls: both take the script and the bindings, and report an
/// outcome.
#[derive(Debug, Clone, Copy)]
pub(super) enum Entry {
    /// `codemode_run`: runs the script.
    Run,
    /// `codemode_analyze`: parses it and reports the tools it can reach, running nothing.
    Analyze,
}

impl Entry {
    fn export(self) -> &'static str {
        match self {
            Entry::Run => "codemode_run",
            Entry::Analyze => "codemode_analyze",
        }
    }
}

pub(super) async fn run(
    inner: &Inner,
    entry: Entry,
    code: &str,
    bindings: &str,
    limits: &Limits,
    dispatcher: Arc<dyn ToolDispatcher>,
) -> Result<RunResult, ExecuteError> {
    let started = Instant::now();
    let deadline = started + limits.timeout();
    // No preopened directories, no environment, no arguments, no sockets; stdin is closed and
    // stdout/stderr go nowhere (the guest writes through the `output` host call instead).
    let wasi = WasiCtxBuilder::new()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build_p1();
    let mut store = Store::new(
        &inner.engine,
        HostState::new(wasi, *limits, deadline, dispatcher),
    );
    store.limiter(|state| &mut state.memory_use);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut context| {
        if Instant::now() >= context.data().deadline {
            context.data_mut().fault.get_or_insert(Fault::Timeout);
            Ok(UpdateDeadline::Interrupt)
        } else {
            // Let other tasks on this thread run, then check again at the next tick.
            Ok(UpdateDeadline::Yield(1))
        }
    });

    let ran = tokio::time::timeout_at(
        deadline.into(),
        enter(inner, &mut store, entry, code, bindings, limits),
    )
    .await;
    let trap = match ran {
        Ok(Ok(())) => None,
        Ok(Err(trap)) => Some(trap),
        Err(_elapsed) => {
            // The run was waiting on the host (a tool call, a sleep) when time ran out.
            store.data_mut().fault.get_or_insert(Fault::Timeout);
            None
        }
    };
    let wall = started.elapsed();
    Ok(assemble(
        store.into_data(),
        trap,
        wall,
        inner.config.wasm_stack_bytes,
    ))
}

async fn enter(
    inner: &Inner,
    store: &mut Store<HostState>,
    entry: Entry,
    code: &str,
    bindings: &str,
    limits: &Limits,
) -> wasmtime::Result<()> {
    let instance = inner.instance_pre.instantiate_async(&mut *store).await?;
    let memory = instance
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| wasmtime::Error::msg("the guest exports no memory"))?;
    store.data_mut().memory = Some(memory);
    let alloc = instance.get_typed_func::<u32, u32>(&mut *store, "codemode_alloc")?;
    let run =
        instance.get_typed_func::<(u32, u32, u32, u32, u32), ()>(&mut *store, entry.export())?;

    let mut pass = async |bytes: &[u8], what: &str| -> wasmtime::Result<(u32, u32)> {
        let len = u32::try_from(bytes.len())?;
        let ptr = alloc.call_async(&mut *store, len).await?;
        if ptr == 0 && len > 0 {
            return Err(wasmtime::Error::msg(format!(
                "no guest memory for the {what}"
            )));
        }
        memory.write(&mut *store, ptr as usize, bytes)?;
        Ok((ptr, len))
    };
    let (code_ptr, code_len) = pass(code.as_bytes(), "script").await?;
    let (bindings_ptr, bindings_len) = pass(bindings.as_bytes(), "bindings").await?;
    let max_result = u32::try_from(limits.max_result_bytes).unwrap_or(u32::MAX);
    let args = (code_ptr, code_len, bindings_ptr, bindings_len, max_result);
    run.call_async(&mut *store, args).await
}

fn assemble(
    state: HostState,
    trap: Option<wasmtime::Error>,
    wall: Duration,
    stack_bytes: usize,
) -> RunResult {
    let (result, error) = if let Some(fault) = &state.fault {
        (Value::Null, Some(fault_error(fault, &state.limits)))
    } else if let Some(trap) = trap {
        match trap.downcast_ref::<I32Exit>() {
            // `os._exit(n)`: a process-level exit the runner never saw, read like `sys.exit(n)`.
            Some(I32Exit(0)) => (Value::Null, None),
            Some(I32Exit(status)) => (Value::Null, Some(exit_error(*status))),
            None => (Value::Null, Some(trap_error(&trap, &state, stack_bytes))),
        }
    } else {
        guest_outcome(&state)
    };
    let stats = RunStats {
        wall_ms: wall.as_secs_f64() * 1e3,
        peak_memory_bytes: state.memory_use.peak_bytes() as u64,
        output_bytes: state.output.total_bytes(),
        output_truncated: state.output.truncated(),
    };
    RunResult {
        ok: error.is_none(),
        result,
        stdout: state.output.text(Stream::Stdout),
        stderr: state.output.text(Stream::Stderr),
        error,
        calls: state.calls.into_records(),
        stats,
    }
}

fn guest_outcome(state: &HostState) -> (Value, Option<RunError>) {
    let Some(bytes) = &state.outcome else {
        return (
            Value::Null,
            Some(host_error(
                ErrorKind::InternalError,
                "the sandbox ended without reporting an outcome",
                None,
            )),
        );
    };
    let outcome = match serde_json::from_slice::<GuestOutcome>(bytes) {
        Ok(outcome) => outcome,
        Err(e) => {
            let message = format!("the sandbox reported an unreadable outcome: {e}");
            return (
                Value::Null,
                Some(host_error(ErrorKind::InternalError, &message, None)),
            );
        }
    };
    let max_result_bytes = state.limits.max_result_bytes;
    if let Some(written) = outcome.oversized_result {
        return (
            Value::Null,
            Some(result_too_large(written, max_result_bytes)),
        );
    }
    if outcome.ok {
        return result_within(outcome.result.as_deref(), max_result_bytes);
    }
    let error = outcome.error.map_or_else(
        || {
            host_error(
                ErrorKind::InternalError,
                "the script failed without an error",
                None,
            )
        },
        |e| {
            let limit = limit_of_script_error(&e, state);
            RunError {
                kind: e.kind,
                message: e.message,
                line: e.line,
                traceback: e.traceback,
                limit,
            }
        },
    );
    (Value::Null, Some(error))
}

/// The limit behind the script's uncaught exception, as the host knows it: a `LimitExceeded`
/// names a per-call limit only if the host answered a call with it, and a `MemoryError` is the
/// memory limit only if the host refused memory. A script can raise either exception itself, with
/// any `limit` it likes; that makes it no limit.
fn limit_of_script_error(error: &GuestError, state: &HostState) -> Option<LimitKind> {
    if error.kind == ErrorKind::MemoryError.as_str() && state.memory_use.refused() {
        return Some(LimitKind::MemoryMb);
    }
    if error.kind == ErrorKind::LimitExceeded.as_str() {
        return error.limit.filter(|limit| state.calls.fired(*limit));
    }
    None
}

fn result_too_large(observed: u64, max_result_bytes: u64) -> RunError {
    let message = format!(
        "the result is at least {observed} bytes of JSON, over the limit of \
         {max_result_bytes}; return less (a summary, a slice) or print it"
    );
    host_error(
        ErrorKind::LimitExceeded,
        &message,
        Some(LimitKind::MaxResultBytes),
    )
}

/// The script's result, when its JSON is within `max_result_bytes`. The guest checks the same
/// limit, but code the script can reach (a rebound `len`, say) may have lied to it: the host
/// measures what it received, exactly.
fn result_within(result: Option<&RawValue>, max_result_bytes: u64) -> (Value, Option<RunError>) {
    let text = result.map_or("null", RawValue::get);
    let size = text.len() as u64;
    if size > max_result_bytes {
        let message = format!(
            "the result is {size} bytes of JSON, over the limit of {max_result_bytes}; \
             return less (a summary, a slice) or print it"
        );
        let error = host_error(
            ErrorKind::LimitExceeded,
            &message,
            Some(LimitKind::MaxResultBytes),
        );
        return (Value::Null, Some(error));
    }
    match serde_json::from_str(text) {
        Ok(value) => (value, None),
        Err(e) => {
            let message = format!("the sandbox reported an unreadable result: {e}");
            (
                Value::Null,
                Some(host_error(ErrorKind::InternalError, &message, None)),
            )
        }
    }
}

fn fault_error(fault: &Fault, limits: &Limits) -> RunError {
    match fault {
        Fault::Timeout => host_error(
            ErrorKind::TimeoutError,
            &format!(
                "the script did not finish within its time limit of {} ms",
                limits.timeout_ms
            ),
            Some(LimitKind::TimeoutMs),
        ),
        Fault::Limit {
            kind: LimitKind::MemoryMb,
            message,
        } => host_error(ErrorKind::MemoryError, message, Some(LimitKind::MemoryMb)),
        Fault::Limit { kind, message } => {
            host_error(ErrorKind::LimitExceeded, message, Some(*kind))
        }
        Fault::Abi(message) => host_error(
            ErrorKind::InternalError,
            &format!("the sandbox broke its host protocol: {message}"),
            None,
        ),
    }
}

fn trap_error(trap: &wasmtime::Error, state: &HostState, stack_bytes: usize) -> RunError {
    match trap.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => host_error(
            ErrorKind::RecursionError,
            &format!(
                "maximum recursion depth exceeded: the script used up the sandbox's {} KiB stack",
                stack_bytes >> 10
            ),
            Some(LimitKind::WasmStack),
        ),
        Some(Trap::Interrupt) => fault_error(&Fault::Timeout, &state.limits),
        _ if state.memory_use.refused() => host_error(
            ErrorKind::MemoryError,
            &format!(
                "the script exceeded its memory limit of {} MiB",
                state.limits.memory_mb
            ),
            Some(LimitKind::MemoryMb),
        ),
        // Sizes past the 32-bit address space (a `join` or `re.sub` building more than 2 GiB)
        // make the interpreter's allocation arithmetic panic before it asks for memory: that is
        // the memory limit too, which can never exceed 2 GiB.
        _ if state
            .panic
            .as_deref()
            .is_some_and(|message| message.starts_with("capacity overflow")) =>
        {
            host_error(
                ErrorKind::MemoryError,
                &format!(
                    "the script asked for more memory than the sandbox can address, past its \
                     memory limit of {} MiB",
                    state.limits.memory_mb
                ),
                Some(LimitKind::MemoryMb),
            )
        }
        _ => {
            let why = match &state.panic {
                Some(message) => message.clone(),
                None => format!("{trap:#}"),
            };
            host_error(
                ErrorKind::InternalError,
                &format!("the interpreter crashed: {why}"),
                None,
            )
        }
    }
}

/// A run that ended the whole guest with exit status `status`: reported as `sys.exit(status)`.
fn exit_error(status: i32) -> RunError {
    RunError {
        kind: "SystemExit".to_string(),
        message: status.to_string(),
        line: None,
        traceback: String::new(),
        limit: None,
    }
}

fn host_error(kind: ErrorKind, message: &str, limit: Option<LimitKind>) -> RunError {
    RunError {
        kind: kind.as_str().to_string(),
        message: message.to_string(),
        line: None,
        traceback: String::new(),
        limit,
    }
}
