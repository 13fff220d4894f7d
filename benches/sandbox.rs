//! Sandbox benchmarks (issue 2): fresh execution, the cost of a tool call, interpreter speed
//! against CPython on the same machine.
//!
//! - `fresh_execution/print`: a whole execution of `print(1+1)` in a fresh instance, then p50/p99
//!   of 2,000 single runs, and the same for Monty's fresh pool checkout measured right after
//!   (`benches/peers/monty_fresh.py`, issue 16 item 1) when `benches/peers/venv` holds
//!   pydantic-monty.
//! - `tool_calls/1000_calls` vs `tool_calls/1000_iterations`: the same loop with and without a
//!   tool call per iteration; (calls - iterations) / 1000 is the cost of one call.
//! - `analysis/50_lines` (issue 13): the guest's analysis of a 50-line script (which tools it
//!   can reach), beside `fresh_execution/print` as the baseline of one fresh instance.
//! - `sum_loop/sandbox` vs `sum_loop/cpython`: `for i in range(1, 1000001): s += i`; CPython is
//!   timed inside one `python3` process so its start-up is not counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use codemode::executor::{Executor, ExecutorConfig, Limits, NoTools, ToolDispatcher, ToolError};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;

struct Echo;

#[async_trait]
impl ToolDispatcher for Echo {
    async fn call(&self, _client: &str, _tool: &str, arguments: Value) -> Result<Value, ToolError> {
        Ok(arguments)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

fn executor() -> Executor {
    Executor::new(ExecutorConfig::default()).expect("executor")
}

async fn execute(executor: &Executor, code: &str, tools: Arc<dyn ToolDispatcher>) {
    let result = executor
        .execute(code, &Limits::DEFAULT, tools)
        .await
        .expect("runs");
    assert!(result.ok, "{:?}", result.error);
}

fn fresh_execution(c: &mut Criterion) {
    let runtime = runtime();
    let executor = executor();
    c.bench_function("fresh_execution/print", |b| {
        b.to_async(&runtime)
            .iter(|| execute(&executor, "print(1+1)", Arc::new(NoTools)));
    });
    fresh_latency(&runtime, &executor);
}

/// Runs of `print(1+1)` timed one by one for the percentiles.
const LATENCY_RUNS: usize = 2_000;

/// Prints p50 and p99 of a fresh execution, and of Monty's fresh pool checkout measured right
/// after in the same run when `benches/peers/venv` has it (see docs/benchmarks.md).
fn fresh_latency(runtime: &tokio::runtime::Runtime, executor: &Executor) {
    let mut times: Vec<Duration> = runtime.block_on(async {
        let mut times = Vec::with_capacity(LATENCY_RUNS);
        for _ in 0..LATENCY_RUNS {
            let started = std::time::Instant::now();
            execute(executor, "print(1+1)", Arc::new(NoTools)).await;
            times.push(started.elapsed());
        }
        times
    });
    times.sort();
    let percentile = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    println!(
        "fresh_execution/print latency over {LATENCY_RUNS} runs: p50 {:.1} µs, p99 {:.1} µs",
        percentile(50).as_secs_f64() * 1e6,
        percentile(99).as_secs_f64() * 1e6
    );
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/monty_fresh.py");
    if !python.exists() {
        println!("monty: not measured ({} is missing)", python.display());
        return;
    }
    match Command::new(&python)
        .arg(&script)
        .arg(LATENCY_RUNS.to_string())
        .output()
    {
        Ok(output) if output.status.success() => println!(
            "monty fresh checkout over {LATENCY_RUNS} runs: {}",
            String::from_utf8_lossy(&output.stdout).trim()
        ),
        Ok(output) => println!(
            "monty: failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => println!("monty: cannot run {}: {error}", python.display()),
    }
}

/// Fifty lines of a typical orchestration script over two servers.
fn fifty_lines() -> String {
    let mut code = String::from("import json\nfrom servers import memory as m\nfs = filesystem\n");
    for i in 0..47 {
        code.push_str(&match i % 4 {
            0 => format!("r{i} = fs.read_text_file(path='f{i}.txt')\n"),
            1 => format!("g{i} = m.search_nodes(query='q{i}')\n"),
            2 => format!(
                "print(json.dumps({{'n': {i}, 'ok': len(str(r{}))}}))\n",
                i - 2
            ),
            _ => format!("items{i} = [x for x in range({i}) if x % 3 == 0]\n"),
        });
    }
    code
}

const MANIFEST: &str = "filesystem\tfilesystem\t{\"read_text_file\": [\"read_text_file\", [[\"path\", \"path\", true]]], \"write_file\": [\"write_file\", []]}\nmemory\tmemory\t{\"search_nodes\": [\"search_nodes\", [[\"query\", \"query\", true]]]}";

fn analysis(c: &mut Criterion) {
    let runtime = runtime();
    let executor = executor();
    let code = fifty_lines();
    assert_eq!(code.lines().count(), 50);
    c.bench_function("analysis/50_lines", |b| {
        b.to_async(&runtime).iter(|| async {
            let run = executor.analyze(&code, MANIFEST).await.expect("analysed");
            assert!(
                run.ok && run.result["unknown"].is_null(),
                "{:?}",
                run.result
            );
        });
    });
}

const CALLS: &str =
    "import codemode\nfor i in range(1000):\n    codemode.call_tool('t', 'echo', i=i)";
const ITERATIONS: &str = "import codemode\nfor i in range(1000):\n    dict(i=i)";

fn tool_calls(c: &mut Criterion) {
    let runtime = runtime();
    let executor = executor();
    let mut group = c.benchmark_group("tool_calls");
    group.bench_function("1000_calls", |b| {
        b.to_async(&runtime)
            .iter(|| execute(&executor, CALLS, Arc::new(Echo)));
    });
    group.bench_function("1000_iterations", |b| {
        b.to_async(&runtime)
            .iter(|| execute(&executor, ITERATIONS, Arc::new(Echo)));
    });
    group.finish();
}

const SUM_LOOP: &str = "s = 0\nfor i in range(1, 1000001):\n    s += i\n";

fn sum_loop(c: &mut Criterion) {
    let runtime = runtime();
    let executor = executor();
    let mut group = c.benchmark_group("sum_loop");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("sandbox", |b| {
        b.to_async(&runtime)
            .iter(|| execute(&executor, SUM_LOOP, Arc::new(NoTools)));
    });
    group.bench_function("cpython", |b| b.iter_custom(cpython_sum_loop));
    group.finish();
}

/// Runs the loop `iterations` times in one CPython process; returns the time CPython measured.
fn cpython_sum_loop(iterations: u64) -> Duration {
    let program = format!(
        "import time\nt = time.perf_counter()\nfor _ in range({iterations}):\n    exec({SUM_LOOP:?}, {{}})\nprint(time.perf_counter() - t)\n"
    );
    let mut child = Command::new("python3")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(program.as_bytes())
        .expect("program");
    let output = child.wait_with_output().expect("python3 exits");
    let seconds: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("seconds");
    Duration::from_secs_f64(seconds)
}

criterion_group!(benches, fresh_execution, analysis, tool_calls, sum_loop);
criterion_main!(benches);
