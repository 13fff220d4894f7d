//! The sandbox executor: runs untrusted Python in a fresh wasmtime instance per execution.
//!
//! One [`Executor`] owns one wasmtime `Engine` (epoch interruption on), the guest module that
//! `build.rs` pre-initialised and precompiled, and one `InstancePre` linking it to WASI (with no
//! files, sockets, environment or arguments) and to the `codemode` host module (`host`).
//! Each [`Executor::execute`] creates a fresh `Store` and instance from the snapshot: nothing
//! survives from one execution to the next. Instances come from wasmtime's pooling allocator,
//! whose memory slots are reset to the snapshot between executions (only the pages a run dirtied
//! are copied back), so a short run pays for what it touches, not for mapping 40 MiB.
//!
//! Limits ([`limits`]) are enforced on the host: wall time by a deadline checked at every epoch
//! tick and around every await; memory, tables and instances by a `ResourceLimiter`; the wasm
//! stack by the engine; output, result and tool calls in the host calls. A limit ends the run
//! with a typed error (`TimeoutError`, `MemoryError`, `RecursionError`, `LimitExceeded`) in its
//! [`RunResult`], never with a host panic.
//!
//! Executions run concurrently, at most `max_concurrent` at once; up to `max_queued` more wait,
//! and beyond that [`ExecuteError::Busy`] answers at once. An execution waiting on a tool is a
//! suspended fiber that holds no thread, and long guest computations yield to the async runtime
//! at every epoch tick, so the bound is one of memory (a pool slot and a fiber stack each), not
//! of cores: [`DEFAULT_MAX_EXECUTIONS`] by default, far more than the cores, and CPU-bound
//! scripts share the cores in epoch-sized turns.

mod bounded_json;
mod calls;
pub mod dispatch;
pub mod engine;
mod host;
pub mod limits;
mod memory;
mod module_cache;
pub mod outcome;
mod output;
pub mod protocol;
mod run;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::{Engine, InstancePre, Linker, Module};

pub use dispatch::{NoTools, ToolDispatcher, ToolError};
pub use limits::{LimitError, LimitOverrides, LimitPolicy, Limits};
pub use outcome::{CallRecord, RunError, RunResult, RunStats};
pub use protocol::{ErrorKind, LimitKind};

use host::HostState;
use run::Entry;

/// The pre-initialised, precompiled guest that `build.rs` produced.
static SANDBOX_CWASM: &[u8] = include_bytes!(env!("CODEMODE_SANDBOX_CWASM"));

/// Identifies the embedded guest (hash of the module and of the engine configuration).
pub const SANDBOX_KEY: &str = env!("CODEMODE_SANDBOX_KEY");

/// How often the engine's epoch advances: the granularity of deadlines and of yielding.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Executions in flight at once unless configured (`sandbox.max_executions`).
pub const DEFAULT_MAX_EXECUTIONS: usize = 64;

/// Executions that may wait for one unless configured (`sandbox.max_queued`).
pub const DEFAULT_MAX_QUEUED: usize = 64;

/// Largest script accepted, in bytes.
pub const MAX_CODE_BYTES: usize = 1 << 20;

/// Settings of an [`Executor`].
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Default and maximum limits of an execution.
    pub limits: LimitPolicy,
    /// Executions in flight at once (running, or waiting on a tool).
    pub max_concurrent: usize,
    /// Executions waiting for a slot before new ones are refused as busy.
    pub max_queued: usize,
    /// The wasm call stack of every execution, in bytes (server-wide: it is an engine setting).
    pub wasm_stack_bytes: usize,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            limits: LimitPolicy::default(),
            max_concurrent: DEFAULT_MAX_EXECUTIONS,
            max_queued: DEFAULT_MAX_QUEUED,
            wasm_stack_bytes: engine::DEFAULT_WASM_STACK_BYTES,
        }
    }
}

/// Why an execution could not be run at all (as opposed to a script that failed, which is a
/// [`RunResult`] with `ok: false`).
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// Every slot is taken and the queue is full.
    #[error("the sandbox is busy: {running} executions running and {queued} queued; retry later")]
    Busy {
        /// Executions running at once.
        running: usize,
        /// Executions allowed to wait.
        queued: usize,
    },
    /// The script is larger than [`MAX_CODE_BYTES`].
    #[error("the script is {size} bytes, over the limit of {max}")]
    CodeTooLarge {
        /// Size of the script.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The requested limits are outside the server's policy.
    #[error(transparent)]
    Limits(#[from] LimitError),
    /// The sandbox itself failed (a bug or a broken build, never the script's fault).
    #[error("the sandbox failed: {0}")]
    Sandbox(String),
}

/// Runs scripts in fresh sandbox instances. Cheap to clone; clones share the engine and slots.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    config: ExecutorConfig,
    engine: Engine,
    instance_pre: InstancePre<HostState>,
    slots: Semaphore,
    queued: AtomicUsize,
    _ticker: EpochTicker,
}

impl Executor {
    /// Loads the embedded guest and starts the epoch ticker.
    ///
    /// # Errors
    /// [`ExecuteError::Sandbox`] when the engine cannot be created or the embedded module was
    /// compiled for another engine or CPU.
    pub fn new(config: ExecutorConfig) -> Result<Executor, ExecuteError> {
        let sandbox = |e: wasmtime::Error| ExecuteError::Sandbox(format!("{e:#}"));
        let engine = Engine::new(&runtime_config(&config)).map_err(sandbox)?;
        let module = load_module(&engine).map_err(sandbox)?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state| &mut state.wasi)
            .map_err(sandbox)?;
        host::add_to_linker(&mut linker).map_err(sandbox)?;
        let instance_pre = linker.instantiate_pre(&module).map_err(sandbox)?;
        let slots = Semaphore::new(config.max_concurrent.max(1));
        let ticker = EpochTicker::start(engine.clone())
            .map_err(|e| ExecuteError::Sandbox(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Executor {
            inner: Arc::new(Inner {
                config,
                engine,
                instance_pre,
                slots,
                queued: AtomicUsize::new(0),
                _ticker: ticker,
            }),
        })
    }

    /// The executor's settings.
    pub fn config(&self) -> &ExecutorConfig {
        &self.inner.config
    }

    /// Executions running now, and waiting for a slot.
    pub fn load(&self) -> (usize, usize) {
        let inner = &*self.inner;
        let slots = inner.config.max_concurrent.max(1);
        let busy = slots.saturating_sub(inner.slots.available_permits());
        (busy, inner.queued.load(Ordering::Acquire))
    }

    /// Runs `code` under `limits`, answering its tool calls with `dispatcher`.
    ///
    /// Waits for a free slot when all are busy and the queue has room.
    ///
    /// # Errors
    /// [`ExecuteError`] when the run could not start; a failing script is an `Ok` result with
    /// `ok: false`.
    pub async fn execute(
        &self,
        code: &str,
        limits: &Limits,
        dispatcher: Arc<dyn ToolDispatcher>,
    ) -> Result<RunResult, ExecuteError> {
        self.execute_bound(code, "", limits, dispatcher).await
    }

    /// Like [`execute`](Self::execute), with the servers of `bindings` (a manifest built by
    /// `Catalog::manifest` of the stubs crate) bound as globals of the script and under
    /// `servers`.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_bound(
        &self,
        code: &str,
        bindings: &str,
        limits: &Limits,
        dispatcher: Arc<dyn ToolDispatcher>,
    ) -> Result<RunResult, ExecuteError> {
        check_size(code)?;
        self.inner.config.limits.check(limits)?;
        let _permit = self.acquire_slot().await?;
        run::run(&self.inner, Entry::Run, code, bindings, limits, dispatcher).await
    }

    /// Parses `code` in a fresh instance, with the servers of `bindings` known: the run's
    /// `result` is the guest's analysis (the tools the script can reach, see
    /// `sandbox/src/analysis.rs`) as JSON. Nothing of the script runs; the default limits bound
    /// the parse, and a run that hits one has an `error` instead.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn analyze(&self, code: &str, bindings: &str) -> Result<RunResult, ExecuteError> {
        check_size(code)?;
        let limits = self
            .inner
            .config
            .limits
            .resolve(&LimitOverrides::default())?;
        let _permit = self.acquire_slot().await?;
        let tools = Arc::new(NoTools);
        run::run(&self.inner, Entry::Analyze, code, bindings, &limits, tools).await
    }

    async fn acquire_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ExecuteError> {
        let inner = &*self.inner;
        if let Ok(permit) = inner.slots.try_acquire() {
            return Ok(permit);
        }
        let busy = || ExecuteError::Busy {
            running: inner.config.max_concurrent,
            queued: inner.config.max_queued,
        };
        if inner.queued.fetch_add(1, Ordering::AcqRel) >= inner.config.max_queued {
            inner.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(busy());
        }
        // Leaves the queue even when the caller gives up waiting (the future is dropped).
        struct Queued<'a>(&'a AtomicUsize);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _queued = Queued(&inner.queued);
        inner.slots.acquire().await.map_err(|_| busy())
    }
}

/// Refuses a script over [`MAX_CODE_BYTES`] before it takes a slot.
fn check_size(code: &str) -> Result<(), ExecuteError> {
    if code.len() > MAX_CODE_BYTES {
        return Err(ExecuteError::CodeTooLarge {
            size: code.len(),
            max: MAX_CODE_BYTES,
        });
    }
    Ok(())
}

/// Instances, memories, tables and fiber stacks in the pool beyond `max_concurrent`.
const POOL_SLACK: u32 = 2;

/// Linear memory that a finished execution's slot keeps mapped, resetting only the pages the
/// script dirtied (found with Linux's `PAGEMAP_SCAN`) by copying them back from the snapshot; the
/// next execution then takes no page faults on them. It covers the snapshot (the 8 MiB stack, the
/// data and the booted interpreter's heap end near 40 MiB) and the first 24 MiB a script grows;
/// memory above it is released with `madvise` instead, so a big run does not make the next reset
/// copy more than this.
const KEEP_RESIDENT_BYTES: usize = 64 << 20;

/// The same for the function table (a few thousand entries).
const TABLE_KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// The engine configuration of the runtime: the shared one, plus a pooling allocator.
///
/// The pool reuses memory slots and fiber stacks instead of mapping and unmapping them for every
/// execution, which dominated the cost of a short run. It does not influence compiled code, so
/// the build script does not need it.
fn runtime_config(config: &ExecutorConfig) -> wasmtime::Config {
    let mut engine_config = engine::sandbox_config(config.wasm_stack_bytes);
    let slots = u32::try_from(config.max_concurrent.max(1))
        .unwrap_or(u32::MAX)
        .saturating_add(POOL_SLACK);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .total_stacks(slots)
        .max_memory_size(config.limits.maxima.memory_bytes())
        .table_elements(memory::MAX_TABLE_ELEMENTS)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES)
        .pagemap_scan(wasmtime::Enabled::Auto);
    engine_config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    engine_config
}

/// Loads the module `build.rs` precompiled for this engine configuration: mapped from the
/// cache file [`module_cache`] keeps, so it is shared copy-on-write rather than copied on every
/// start, else from the embedded bytes.
#[allow(unsafe_code)]
fn load_module(engine: &Engine) -> wasmtime::Result<Module> {
    let cached = module_cache::cache_dir()
        .and_then(|dir| module_cache::ready_file(&dir, SANDBOX_KEY, SANDBOX_CWASM));
    if let Some(path) = cached {
        // SAFETY: `deserialize_file` trusts the file to be wasmtime's own output and to stay
        // unchanged while mapped. It holds the embedded bytes below, written by codemode under a
        // name that hashes them, and is used only when it and its folder are this user's and
        // nobody else may write them (see `module_cache`); wasmtime still checks its header,
        // version and configuration.
        match unsafe { Module::deserialize_file(engine, &path) } {
            Ok(module) => return Ok(module),
            Err(error) => {
                tracing::warn!(%error, file = %path.display(), "the sandbox cache file did not load; using the embedded module")
            }
        }
    }
    // SAFETY: `Module::deserialize` trusts its input to be wasmtime's own output. These bytes
    // were produced by `Engine::precompile_module` of this wasmtime version in our build script
    // and embedded at compile time; nothing at run time can change them. wasmtime still checks
    // the version and configuration and refuses a mismatch.
    unsafe { Module::deserialize(engine, SANDBOX_CWASM) }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        thread::Builder::new()
            .name("codemode-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
