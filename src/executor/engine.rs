//! The one wasmtime configuration shared by the build script and the runtime.
//!
//! `build.rs` includes this file with `#[path]` and precompiles the guest with it; the runtime
//! builds its `Engine` from it and loads that precompiled code. wasmtime refuses to load code
//! compiled under an incompatible configuration, so both sides must call the same function:
//! everything here that influences code generation (epoch checks, memory layout, wasm features)
//! is fixed, and only runtime-only knobs (stack sizes) are parameters.

/// Name of the guest's export that Wizer runs before the snapshot.
pub const INIT_EXPORT: &str = "codemode_init";

/// Size of the wasm call stack given to each execution, in bytes, unless configured otherwise.
pub const DEFAULT_WASM_STACK_BYTES: usize = 4 << 20;

/// How much larger than the wasm stack the host fiber stack is: host calls and wasmtime's own
/// frames run on it too, and wasmtime requires it to be strictly larger.
const ASYNC_STACK_HEADROOM: usize = 1 << 20;

/// The wasmtime configuration every engine of codemode uses.
///
/// `wasm_stack_bytes` bounds how deep guest code may recurse before it traps; it does not affect
/// compiled code, so the runtime may pick a different value than the build.
pub fn sandbox_config(wasm_stack_bytes: usize) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    // Deadlines: compiled code checks the engine's epoch at loop headers and function entries.
    config.epoch_interruption(true);
    config.max_wasm_stack(wasm_stack_bytes);
    config.async_stack_size(wasm_stack_bytes + ASYNC_STACK_HEADROOM);
    // Instantiate from the snapshot by mapping its memory image copy-on-write.
    config.memory_init_cow(true);
    // The guest is a plain Rust module: no proposals beyond what rustc emits by default.
    // No GC types: the build's wasmtime has GC compiled in (Wizer needs it), the runtime's not.
    config.gc_support(false);
    config.wasm_gc(false);
    config.wasm_stack_switching(false);
    config.wasm_component_model(false);
    config
}
