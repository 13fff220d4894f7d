//! Builds the sandbox guest and embeds it, ready to run, into codemode.
//!
//! 1. `cargo build --release` of `sandbox/` for `wasm32-wasip1`, in its own target directory
//!    (`<target>/sandbox`) with a clean environment, so the two builds never share a lock and no
//!    host flag leaks into the guest.
//! 2. Wizer runs the guest's `codemode_init` (interpreter boot, prelude imports) and snapshots the
//!    initialised memory into a new module.
//! 3. Cranelift precompiles that module with the runtime's engine configuration
//!    (`src/executor/engine.rs`), so the service only maps code at start-up.
//!
//! Steps 2 and 3 take tens of seconds; their output is cached in `<target>/sandbox/` keyed by the
//! guest's hash and the engine's compatibility hash, so dev, release and clippy builds share it.
//! `rerun-if-changed` lists only guest inputs: editing host code never rebuilds the guest.

use std::collections::hash_map::DefaultHasher;
use std::env;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use sha2::{Digest, Sha256};

#[path = "src/executor/engine.rs"]
#[allow(dead_code)]
mod engine;

const GUEST_TARGET: &str = "wasm32-wasip1";

fn main() -> ExitCode {
    for input in [
        "build.rs",
        "src/executor/engine.rs",
        "sandbox/src",
        "sandbox/python",
        "sandbox/Cargo.toml",
        "sandbox/Cargo.lock",
        "sandbox/.cargo/config.toml",
        "rust-toolchain.toml",
    ] {
        println!("cargo:rerun-if-changed={input}");
    }
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let guest_dir = target_root(&out_dir, &manifest_dir).join("sandbox");

    check_guest_target()?;
    let wasm_path = build_guest(&manifest_dir, &guest_dir)?;
    let wasm = std::fs::read(&wasm_path)
        .map_err(|e| format!("cannot read the guest {}: {e}", wasm_path.display()))?;

    let engine = build_engine()?;
    let key = cache_key(&wasm, &engine);
    let cached = guest_dir.join(format!("snapshot-{key}.cwasm"));
    if !cached.exists() {
        let snapshot = preinitialise(&engine, &wasm)?;
        let compiled = engine
            .precompile_module(&snapshot)
            .map_err(|e| format!("precompiling the snapshot failed: {e:#}"))?;
        let partial = cached.with_extension("partial");
        std::fs::write(&partial, &compiled)
            .and_then(|()| std::fs::rename(&partial, &cached))
            .map_err(|e| format!("cannot write {}: {e}", cached.display()))?;
        remove_stale_snapshots(&guest_dir, &cached);
    }
    let embedded = out_dir.join("sandbox.cwasm");
    std::fs::copy(&cached, &embedded)
        .map_err(|e| format!("cannot copy the snapshot to {}: {e}", embedded.display()))?;
    println!(
        "cargo:rustc-env=CODEMODE_SANDBOX_CWASM={}",
        embedded.display()
    );
    println!("cargo:rustc-env=CODEMODE_SANDBOX_KEY={key}");
    Ok(())
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name}"))
}

/// The outer build's target directory: the ancestor of `OUT_DIR` holding cargo's `CACHEDIR.TAG`.
fn target_root(out_dir: &Path, manifest_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir.join("target"))
}

/// Stops early, with the fix, when the toolchain lacks the guest's standard library.
fn check_guest_target() -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {rustc}: {e}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let std_dir = Path::new(&sysroot).join("lib/rustlib").join(GUEST_TARGET);
    if std_dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "the Rust target {GUEST_TARGET} is not installed for this toolchain; \
             run `rustup toolchain install` in the repository (it installs what \
             rust-toolchain.toml lists), then build again"
        ))
    }
}

fn build_guest(manifest_dir: &Path, guest_dir: &Path) -> Result<PathBuf, String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(manifest_dir.join("sandbox"))
        .args(["build", "--release", "--locked", "--target", GUEST_TARGET])
        // rustpython's parser crates declare rust-version 1.96 but build on 1.95.
        .arg("--ignore-rust-version")
        .arg("--target-dir")
        .arg(guest_dir);
    // Nothing of the outer build may leak in: its flags, wrappers (clippy-driver) and target
    // directory. The jobserver (CARGO_MAKEFLAGS) is kept so both builds share the job budget.
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        let keep = name == "CARGO_HOME" || name == "CARGO_MAKEFLAGS";
        let outer = name.starts_with("CARGO_")
            || name.starts_with("RUSTC")
            || name.starts_with("DEP_")
            || matches!(
                name.as_ref(),
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
            );
        if outer && !keep {
            command.env_remove(name.as_ref());
        }
    }
    let status = command
        .status()
        .map_err(|e| format!("cannot start cargo to build the sandbox guest: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the sandbox guest failed ({status}); see the output above"
        ));
    }
    Ok(guest_dir
        .join(GUEST_TARGET)
        .join("release")
        .join("codemode_sandbox.wasm"))
}

fn build_engine() -> Result<wasmtime::Engine, String> {
    let mut config = engine::sandbox_config(engine::DEFAULT_WASM_STACK_BYTES);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // Wizer compiles wasmtime with `threads` and `gc` (which brings exceptions); the runtime has
    // neither and would refuse a module compiled with them enabled.
    config.wasm_threads(false);
    config.wasm_exceptions(false);
    wasmtime::Engine::new(&config).map_err(|e| format!("cannot create the wasm engine: {e:#}"))
}

fn cache_key(wasm: &[u8], engine: &wasmtime::Engine) -> String {
    let mut engine_hasher = DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hasher);
    let mut digest = Sha256::new();
    digest.update(wasm);
    digest.update(engine_hasher.finish().to_le_bytes());
    digest.update(env!("CARGO_PKG_VERSION").as_bytes());
    let hash = digest.finalize();
    hash.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Runs the guest's init export under Wizer and returns the snapshotted module.
fn preinitialise(engine: &wasmtime::Engine, wasm: &[u8]) -> Result<Vec<u8>, String> {
    // Boot sees no environment, arguments or files; what it reads of clocks and randomness is
    // frozen into the snapshot (the guest fixes its hash seed and defers `random`).
    let wasi = wasmtime_wasi::WasiCtxBuilder::new()
        .inherit_stderr()
        .build_p1();
    let mut store = wasmtime::Store::new(engine, wasi);
    // Compiled code checks epochs; nothing advances this engine's epoch, so one tick never passes.
    store.set_epoch_deadline(1);
    let mut linker = wasmtime::Linker::<wasmtime_wasi::p1::WasiP1Ctx>::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |ctx| ctx)
        .map_err(|e| format!("cannot link WASI: {e:#}"))?;
    let mut wizer = wasmtime_wizer::Wizer::new();
    wizer.init_func(engine::INIT_EXPORT);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime for Wizer: {e}"))?;
    runtime
        .block_on(wizer.run(&mut store, wasm, async |store, module| {
            // Boot runs a warm-up script: its output and outcome are dropped; it calls no tools.
            linker.func_wrap("codemode", "output", |_: i32, _: i32, _: i32| {})?;
            linker.func_wrap("codemode", "result", |_: i32, _: i32| {})?;
            linker.func_wrap("codemode", "panic", boot_panic)?;
            linker.define_unknown_imports_as_traps(module)?;
            linker.instantiate_async(store, module).await
        }))
        .map_err(|e| format!("pre-initialising the guest failed: {e:#}"))
}

/// A panic while the guest boots: its message goes to the build's output before the abort.
fn boot_panic(mut caller: wasmtime::Caller<'_, wasmtime_wasi::p1::WasiP1Ctx>, ptr: i32, len: i32) {
    let Some(wasmtime::Extern::Memory(memory)) = caller.get_export("memory") else {
        return;
    };
    let mut message = vec![0; len.clamp(0, 4096) as usize];
    if memory
        .read(&caller, ptr as u32 as usize, &mut message)
        .is_ok()
    {
        eprintln!(
            "the guest panicked while booting: {}",
            String::from_utf8_lossy(&message)
        );
    }
}

fn remove_stale_snapshots(guest_dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(guest_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_snapshot = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("snapshot-") && n.ends_with(".cwasm"));
        if is_snapshot && path != keep {
            let _ = std::fs::remove_file(path);
        }
    }
}
