//! The codemode guest: RustPython compiled to `wasm32-wasip1`, run by the host in wasmtime.
//!
//! The module is pre-initialised at build time (see `../build.rs`): the host's build script calls
//! [`codemode_init`] once under Wizer, which boots the interpreter, imports the prelude and the
//! Python runtime (`python/codemode.py`), and the resulting memory is snapshotted. Every execution
//! then starts from that snapshot and calls [`codemode_run`] exactly once.
//!
//! The guest trusts nothing and is trusted by nothing: the host validates every pointer and
//! length it receives, and the only ways out of the sandbox are the imports of the `codemode`
//! host module declared in [`host`]. The Python side reaches them through the native `_codemode`
//! module defined in [`bridge`].

mod bridge;
mod host;

use std::cell::OnceCell;

use rustpython_vm::{Interpreter, PyObjectRef, Settings, builtins::PyStrRef};

/// Python runtime: output capture, tool calls, fan-out and the script runner.
const RUNTIME_PY: &str = include_str!("../python/codemode.py");

/// The boundary's vocabulary as the guest spells it (the host's is `src/executor/protocol.rs`).
const PROTOCOL_PY: &str = include_str!("../python/_protocol.py");

/// Imports the runtime, then the prelude modules scripts may use for free, and hands back the
/// runner. Runs once, before the snapshot.
const BOOT_PY: &str = r#"
import sys, types
protocol = types.ModuleType("_codemode_protocol")
protocol.__file__ = "<codemode-protocol>"
sys.modules["_codemode_protocol"] = protocol
exec(compile(PROTOCOL_SOURCE, "<codemode-protocol>", "exec"), protocol.__dict__)
runtime = types.ModuleType("codemode")
runtime.__file__ = "<codemode>"
sys.modules["codemode"] = runtime
exec(compile(RUNTIME_SOURCE, "<codemode>", "exec"), runtime.__dict__)
runner = runtime._boot()
"#;

/// The interpreter and the runner function, created by [`codemode_init`].
struct Guest {
    interpreter: Interpreter,
    runner: PyObjectRef,
}

thread_local! {
    // wasm32-wasip1 has one thread: this is a plain static that lives in the snapshot.
    static GUEST: OnceCell<Guest> = const { OnceCell::new() };
}

fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.isolated = true;
    settings.ignore_environment = true;
    settings.import_site = false;
    settings.user_site_directory = false;
    settings.install_signal_handlers = false;
    settings.write_bytecode = false;
    settings.buffered_stdio = false;
    settings.safe_path = true;
    // The snapshot would freeze whatever seed boot drew, so fix it on purpose: string hashing
    // and set order are the same in every execution.
    settings.hash_seed = Some(0);
    settings.path_list = Vec::new();
    settings
}

fn boot() -> Result<Guest, String> {
    let builder = Interpreter::builder(settings());
    let stdlib = rustpython_stdlib::stdlib_module_defs(&builder.ctx);
    let bridge = bridge::module_def(&builder.ctx);
    let interpreter = builder
        .add_native_modules(&stdlib)
        .add_native_module(bridge)
        .add_frozen_modules(rustpython_pylib::FROZEN_STDLIB)
        .build();
    let runner = interpreter.enter(|vm| {
        let scope = vm.new_scope_with_builtins();
        scope
            .globals
            .set_item("RUNTIME_SOURCE", vm.ctx.new_str(RUNTIME_PY).into(), vm)
            .map_err(|e| describe(vm, &e))?;
        scope
            .globals
            .set_item("PROTOCOL_SOURCE", vm.ctx.new_str(PROTOCOL_PY).into(), vm)
            .map_err(|e| describe(vm, &e))?;
        vm.run_string(scope.clone(), BOOT_PY, "<codemode-boot>")
            .map_err(|e| describe(vm, &e))?;
        scope
            .globals
            .get_item("runner", vm)
            .map_err(|e| describe(vm, &e))
    })?;
    Ok(Guest {
        interpreter,
        runner,
    })
}

fn describe(
    vm: &rustpython_vm::VirtualMachine,
    error: &rustpython_vm::builtins::PyBaseExceptionRef,
) -> String {
    let mut text = String::new();
    let _ = vm.write_exception(&mut text, error);
    text
}

/// Boots the interpreter; called once by Wizer before the snapshot is taken.
///
/// A failure here is a build failure, so it aborts with the Python traceback on stderr.
#[unsafe(no_mangle)]
pub extern "C" fn codemode_init() {
    GUEST.with(|cell| match boot() {
        Ok(guest) => {
            let _ = cell.set(guest);
        }
        Err(message) => {
            eprintln!("codemode guest failed to boot:\n{message}");
            std::process::abort();
        }
    });
}

/// Runs one script. `code` and `bindings` are UTF-8 in guest memory (each from
/// [`codemode_alloc`]); `bindings` is the manifest of the tool clients the script may call, one
/// line per client (see `python/codemode.py`). The outcome is handed to the host as JSON through
/// `codemode.result`. `max_result_bytes` lets the guest refuse an oversized result before
/// serialising it in full; the host checks again.
///
/// # Safety
/// Each pointer must point to its length of initialised bytes allocated by [`codemode_alloc`]
/// with exactly that length (or be null with length 0).
#[allow(clippy::missing_safety_doc)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn codemode_run(
    code_ptr: *mut u8,
    code_len: usize,
    bindings_ptr: *mut u8,
    bindings_len: usize,
    max_result_bytes: u32,
) {
    // SAFETY: forwarded from this function's contract.
    let (code, bindings) = unsafe { (take(code_ptr, code_len), take(bindings_ptr, bindings_len)) };
    let outcome = GUEST.with(|cell| match cell.get() {
        Some(guest) => run(guest, code, bindings, max_result_bytes),
        None => internal_error("the interpreter was not initialised"),
    });
    host::send_result(outcome.as_bytes());
}

/// Takes ownership of a buffer the host filled.
///
/// # Safety
/// `ptr` points to `len` initialised bytes allocated by [`codemode_alloc`] with exactly `len`,
/// or is null with `len` 0.
unsafe fn take(ptr: *mut u8, len: usize) -> String {
    if ptr.is_null() || len == 0 {
        return String::new();
    }
    // SAFETY: the host wrote `len` bytes into a buffer it obtained from `codemode_alloc` with
    // exactly this length; ownership passes to us here.
    let bytes = unsafe { Vec::from_raw_parts(ptr, len, len) };
    String::from_utf8_lossy(&bytes).into_owned()
}

fn run(guest: &Guest, code: String, bindings: String, max_result_bytes: u32) -> String {
    guest.interpreter.enter(|vm| {
        let args = (
            vm.ctx.new_str(code),
            vm.ctx.new_int(max_result_bytes),
            vm.ctx.new_str(bindings),
        );
        match guest.runner.call(args, vm) {
            Ok(value) => match value.downcast::<rustpython_vm::builtins::PyStr>() {
                Ok(text) => {
                    let text: PyStrRef = text;
                    text.to_string_lossy().into_owned()
                }
                Err(_) => internal_error("the runner returned a non-string"),
            },
            Err(error) => internal_error(&describe(vm, &error)),
        }
    })
}

/// An outcome for failures of the runtime itself (not of the user's script).
fn internal_error(message: &str) -> String {
    let message = message
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!(
        r#"{{"ok":false,"error":{{"type":"InternalError","message":"{message}","line":null,"traceback":""}}}}"#
    )
}

/// Allocates `len` bytes for the host to write into. Returns null when `len` is 0 or memory is
/// exhausted.
#[unsafe(no_mangle)]
pub extern "C" fn codemode_alloc(len: usize) -> *mut u8 {
    if len == 0 {
        return std::ptr::null_mut();
    }
    let mut buffer = Vec::<u8>::new();
    if buffer.try_reserve_exact(len).is_err() {
        return std::ptr::null_mut();
    }
    buffer.resize(len, 0);
    // Exactly `len` long, so `codemode_run` can rebuild it with `Vec::from_raw_parts(ptr, len, len)`.
    let mut buffer = std::mem::ManuallyDrop::new(buffer.into_boxed_slice());
    buffer.as_mut_ptr()
}
