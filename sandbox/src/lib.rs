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
//! module defined in [`bridge`]. What a run reports is built by native code ([`runner`]) that no
//! script can rebind.

mod analysis;
mod bridge;
mod host;
mod runner;

use std::cell::OnceCell;

use rustpython_vm::{Interpreter, Settings, builtins::PyType};

use runner::{Runner, describe};

/// Python runtime: output capture, tool calls, fan-out and the script runner.
const RUNTIME_PY: &str = include_str!("../python/codemode.py");

/// The boundary's vocabulary as the guest spells it (the host's is `src/executor/protocol.rs`).
const PROTOCOL_PY: &str = include_str!("../python/_protocol.py");

/// Imports the runtime, then the prelude modules scripts may use for free, and hands back what the
/// runner needs from Python. Runs once, before the snapshot.
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
prepare = runtime._boot()
limit_exceeded = runtime.LimitExceeded
"#;

/// Scripts run once before the snapshot, through the real runner, so that what every execution
/// needs (code paths, caches, interned names) is built in the snapshot's memory instead of being
/// built, and dirtied, per run.
const WARM_UP: [(&str, &str); 3] = [
    (
        "import json\ndata = {\"n\": [1, 2.5, None, True], \"s\": \"x\"}\n\
         print(json.dumps(data), len(data), f\"{3.14:.1f}\")\n\
         try:\n    {}[\"missing\"]\nexcept KeyError as e:\n    message = str(e)\n\
         result = {\"ok\": sorted(data), \"message\": message}\n",
        "",
    ),
    ("1 / 0", ""),
    (
        "from servers import demo\ntool = demo.get_sum\ntry:\n    demo.missing\n\
         except AttributeError:\n    pass\nresult = [repr(tool), repr(demo.get_sum_async)]\n",
        "demo\tdemo\t{\"get_sum\": [\"get-sum\", [[\"a\", \"a\", true], [\"b\", \"b\", false]]]}",
    ),
];

/// Forgets what the warm-up bound, then freezes what boot built, so that no collection ever
/// walks (and dirties) the snapshot's objects.
const SETTLE_PY: &str = r#"
import sys, gc
for name in [n for n in sys.modules if n == "servers" or n.startswith("servers.")]:
    del sys.modules[name]
gc.freeze()
"#;

/// The interpreter and the runner, created by [`codemode_init`].
struct Guest {
    interpreter: Interpreter,
    runner: Runner,
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
        let global = |name: &str| {
            scope
                .globals
                .get_item(name, vm)
                .map_err(|e| describe(vm, &e))
        };
        for (name, source) in [
            ("RUNTIME_SOURCE", RUNTIME_PY),
            ("PROTOCOL_SOURCE", PROTOCOL_PY),
        ] {
            scope
                .globals
                .set_item(name, vm.ctx.new_str(source).into(), vm)
                .map_err(|e| describe(vm, &e))?;
        }
        vm.run_string(scope.clone(), BOOT_PY, "<codemode-boot>")
            .map_err(|e| describe(vm, &e))?;
        let limit_exceeded = global("limit_exceeded")?
            .downcast::<PyType>()
            .map_err(|_| "codemode.LimitExceeded is not a class".to_string())?;
        let runner = Runner {
            prepare: global("prepare")?,
            limit_exceeded,
        };
        for (code, bindings) in WARM_UP {
            runner.run(vm, code, bindings, 1 << 20);
        }
        vm.run_string(vm.new_scope_with_builtins(), SETTLE_PY, "<codemode-settle>")
            .map_err(|e| describe(vm, &e))?;
        immortalize_snapshot(vm);
        Ok::<_, String>(runner)
    })?;
    Ok(Guest {
        interpreter,
        runner,
    })
}

/// Makes every object boot left alive immortal (PEP 683): the tracked ones and what they refer
/// to directly (the strings, numbers and other leaves inside them).
///
/// A run touches hundreds of these objects (types, builtins, module dictionaries, interned
/// names), and every reference it takes would otherwise write the object's count: a
/// copy-on-write fault on its page of the snapshot, and that page to reset after the run. With
/// the counts parked, a run dirties the pages of what it creates, not of what it reads, so it
/// costs fewer faults and leaves less to reset. Nothing is lost: no run could free these objects
/// anyway (every instance is discarded after its one run), and their contents stay as mutable
/// as before.
fn immortalize_snapshot(vm: &rustpython_vm::VirtualMachine) {
    for object in vm.state.gc.get_objects(None) {
        for referent in object.gc_get_referents() {
            referent.make_immortal();
        }
        object.make_immortal();
    }
}

/// Boots the interpreter; called once by Wizer before the snapshot is taken.
///
/// A failure here is a build failure, so it aborts with the Python traceback on stderr.
#[unsafe(no_mangle)]
pub extern "C" fn codemode_init() {
    // The guest aborts on a panic; the host learns why first (a capacity overflow is the
    // memory limit, anything else a crash of codemode).
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload_as_str().unwrap_or("a panic without a message");
        host::report_panic(message);
    }));
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
        Some(guest) => guest.interpreter.enter(|vm| {
            let max_result_bytes = usize::try_from(max_result_bytes).unwrap_or(usize::MAX);
            guest.runner.run(vm, &code, &bindings, max_result_bytes)
        }),
        None => runner::internal_error("the interpreter was not initialised"),
    });
    host::send_result(&outcome);
}

/// Reports which tools `code` can call with the servers of `bindings` bound, without running it
/// (see [`analysis`]); the arguments are those of [`codemode_run`]. The answer reaches the host
/// as the `result` of an outcome.
///
/// # Safety
/// As [`codemode_run`].
#[allow(clippy::missing_safety_doc)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn codemode_analyze(
    code_ptr: *mut u8,
    code_len: usize,
    bindings_ptr: *mut u8,
    bindings_len: usize,
    _max_result_bytes: u32,
) {
    // SAFETY: forwarded from this function's contract.
    let (code, bindings) = unsafe { (take(code_ptr, code_len), take(bindings_ptr, bindings_len)) };
    let analysis = analysis::analyze(&code, &bindings);
    let outcome = match serde_json::to_vec(&analysis) {
        Ok(json) => runner::ok_outcome(&json),
        Err(e) => runner::internal_error(&format!("unencodable analysis: {e}")),
    };
    host::send_result(&outcome);
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
