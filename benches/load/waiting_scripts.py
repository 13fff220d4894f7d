"""Scripts that wait on a tool, sent at once to `codemode serve` (issue 16, items 0 and 7).

Starts the given codemode binary with server-everything over stdio, then sends N scripts at once
to POST /v1/code/execute, each waiting SECONDS on the tool `trigger-long-running-operation`, and
one CPU-bound script beside them. Reports the wall time until all finished, the CPU-bound
script's own time, and codemode's resident memory idle, at its peak while the scripts wait, and
per waiting execution ((peak - idle) / N). `--max-executions` sets `sandbox.max_executions`
(2 reproduces the old bound of one execution per core on these machines); `--by-mapping` adds
the mappings of codemode's address space whose resident memory grew most, halfway through the
wait (which part of the per-execution memory is linear memory, fiber stacks or host heap).
Halfway through the wait it also reads `/proc/PID/smaps_rollup`: what each waiting execution
adds to RSS (which counts every page of the snapshot a run maps, though the page cache shares
them between all executions), to PSS, and to private memory (the pages only it holds).

    tests/servers/venv/bin/python benches/load/waiting_scripts.py target/release/codemode \
        [--scripts 64] [--seconds 2] [--max-executions 64]
"""

import argparse
import concurrent.futures
import json
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from serve import rss_bytes, start_serve

ROOT = pathlib.Path(__file__).resolve().parents[2]
EVERYTHING = ROOT / "tests/servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
CPU_BOUND = "result = sum(i * i for i in range(1_000_000))"


def smaps(pid: int) -> dict:
    """Resident KiB of each mapping of `pid`, keyed by address range and name."""
    mappings, key = {}, None
    with open(f"/proc/{pid}/smaps") as lines:
        for line in lines:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                key = f"{fields[0]} {fields[5] if len(fields) > 5 else '[anonymous]'}"
            elif fields[0] == "Rss:":
                mappings[key] = int(fields[1])
    return mappings


def rollup(pid: int) -> dict:
    """Resident KiB of `pid` by kind: all of it (Rss), its share of shared pages (Pss), and the
    pages no other mapping holds (Private_Clean + Private_Dirty, its unique set)."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as lines:
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return {"rss": fields["Rss"], "pss": fields["Pss"],
            "private": fields["Private_Clean"] + fields["Private_Dirty"]}


def grown(before: dict, after: dict, top: int = 8) -> list:
    """The mappings whose resident memory grew most, in MiB."""
    growth = sorted(((after[k] - before.get(k, 0), k) for k in after), reverse=True)[:top]
    return [[k, round(kib / 1024, 1)] for kib, k in growth if kib > 0]


def start(binary: str, max_executions: int, workdir: pathlib.Path) -> tuple[subprocess.Popen, str]:
    config = {
        "sandbox": {"max_executions": max_executions, "max_queued": 256, "timeout_ms": 60_000},
        "mcp": {"client_configs": [{
            "name": "everything", "connection_type": "stdio",
            "stdio_config": {"command": "node", "args": [str(EVERYTHING), "stdio"]},
            "tool_execution_timeout": 60,
        }]},
    }
    return start_serve(binary, config, workdir)


def waiting_script(seconds: float) -> str:
    return ("from servers import everything\n"
            f"everything.trigger_long_running_operation(duration={seconds}, steps=1)")


def run(base: str, code: str) -> tuple[float, dict]:
    body = json.dumps({"code": code}).encode()
    request = urllib.request.Request(f"{base}/v1/code/execute", data=body,
                                     headers={"content-type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.load(response)
    return time.perf_counter() - started, answer


def measure(binary: str, scripts: int, seconds: float, max_executions: int,
            by_mapping: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        process, base = start(binary, max_executions, pathlib.Path(workdir))
        try:
            run(base, waiting_script(0.01))  # warm: the client is connected, the pool touched
            waiting = waiting_script(seconds)
            idle = rss_bytes(process.pid)
            idle_mappings = smaps(process.pid) if by_mapping else {}
            idle_rollup = rollup(process.pid)
            waiting_mappings, waiting_rollup = {}, {}
            peak = idle
            done = threading.Event()

            def sample() -> None:
                nonlocal peak, waiting_mappings, waiting_rollup
                while not done.wait(0.01):
                    peak = max(peak, rss_bytes(process.pid))
                    if not waiting_rollup and time.perf_counter() - started > seconds / 2:
                        waiting_rollup = rollup(process.pid)
                        waiting_mappings = smaps(process.pid) if by_mapping else {}

            started = time.perf_counter()
            sampler = threading.Thread(target=sample)
            sampler.start()
            with concurrent.futures.ThreadPoolExecutor(scripts + 1) as pool:
                waits = [pool.submit(run, base, waiting) for _ in range(scripts)]
                cpu = pool.submit(run, base, CPU_BOUND)
                results = [w.result() for w in waits]
                cpu_seconds, cpu_answer = cpu.result()
            wall = time.perf_counter() - started
            done.set()
            sampler.join()
            failed = [a for _, a in results if not a.get("ok")] + ([] if cpu_answer.get("ok") else [cpu_answer])
            return {
                "max_executions": max_executions,
                "scripts": scripts,
                "tool_seconds": seconds,
                "all_done_s": round(wall, 2),
                "slowest_waiting_script_s": round(max(s for s, _ in results), 2),
                "cpu_bound_script_s": round(cpu_seconds, 2),
                "failed": len(failed),
                "rss_idle_mib": round(idle / 2**20, 1),
                "rss_peak_mib": round(peak / 2**20, 1),
                "per_waiting_execution_mib": round((peak - idle) / scripts / 2**20, 2),
                # Halfway through the wait: what each waiting execution adds, counted three ways.
                "halfway_per_execution_mib": {
                    kind: round((waiting_rollup[kind] - idle_rollup[kind]) / scripts / 1024, 2)
                    for kind in ("rss", "pss", "private")
                } if waiting_rollup else None,
                **({"grown_mappings_mib": grown(idle_mappings, waiting_mappings)} if by_mapping else {}),
            }
        finally:
            process.terminate()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--scripts", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--max-executions", type=int, default=64)
    parser.add_argument("--by-mapping", action="store_true",
                        help="also report the mappings whose resident memory grew most while the scripts wait")
    args = parser.parse_args()
    print(json.dumps(measure(args.binary, args.scripts, args.seconds, args.max_executions,
                             args.by_mapping)))


if __name__ == "__main__":
    sys.exit(main())
