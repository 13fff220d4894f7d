"""Load on POST /v1/code/execute with wrk (issue 16, items 1 and 3).

Starts the given server, then runs wrk (Debian's `wrk`) on the same machine against
/v1/code/execute for each connection count, and reports requests per second, p50 and p99
latency, the answers by status, and the server's resident memory at the start, its peak and the
end of each run (sampled every 100 ms).

    tests/servers/venv/bin/python benches/load/code_execute.py SERVER \
        [--connections 1,16,64] [--seconds 10] [--script print|calls]

SERVER is `target/release/codemode` (`codemode serve` on its embedded defaults, no MCP server)
or `target/release/examples/serve_echo` (the same service with one in-process tool,
`local.echo`). `--script print` sends `print(1+1)`; `--script calls` a script making 10 calls
to `local.echo` (serve_echo only).
"""

import argparse
import json
import pathlib
import re
import subprocess
import tempfile
import threading

from serve import rss_bytes, start_serve


SCRIPTS = {
    "print": "print(1+1)",
    "calls": "for _ in range(10):\n    local.echo(message='hi')\n",
}

# wrk's Lua: one POST with the script as JSON, and a count of answers by status.
LUA = """
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = BODY
statuses = {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for status, n in pairs(counts) do total[status] = (total[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, '"' .. status .. '": ' .. n) end
  io.write("STATUSES {" .. table.concat(parts, ", ") .. "}\\n")
  io.write(string.format("LATENCY %d %d\\n", latency:percentile(50), latency:percentile(99)))
end
"""


def start(binary: str, workdir: pathlib.Path) -> tuple[subprocess.Popen, str]:
    if pathlib.Path(binary).name == "serve_echo":
        process = subprocess.Popen([binary], stdout=subprocess.PIPE, text=True)
        line = process.stdout.readline()
        if not line.startswith("listening "):
            raise SystemExit("serve_echo did not start")
        return process, line.split()[1]
    return start_serve(binary, {"sandbox": {"max_queued": 1024}}, workdir)


def load(base: str, pid: int, code: str, connections: int, seconds: int,
         workdir: pathlib.Path) -> dict:
    script = workdir / "post.lua"
    script.write_text(LUA.replace("BODY", json.dumps(json.dumps({"code": code}))))
    samples = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(rss_bytes(pid))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample)
    start_rss = rss_bytes(pid)
    sampler.start()
    wrk = subprocess.run(
        ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s",
         "--timeout", "30s", "-s", str(script), f"{base}/v1/code/execute"],
        capture_output=True, text=True, check=True)
    stop.set()
    sampler.join()
    out = wrk.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50, p99 = (int(v) for v in re.search(r"LATENCY (\d+) (\d+)", out).groups())
    statuses = json.loads(re.search(r"STATUSES (\{.*\})", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "connections": connections,
        "seconds": seconds,
        "requests_per_second": rate,
        "p50_ms": p50 / 1e3,
        "p99_ms": p99 / 1e3,
        "statuses": statuses,
        "socket_errors": errors.group(1) if errors else None,
        "rss_mib": {"start": start_rss / 2**20, "peak": max(samples) / 2**20,
                    "end": rss_bytes(pid) / 2**20},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--script", choices=sorted(SCRIPTS), default="print")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        workdir = pathlib.Path(workdir)
        process, base = start(args.binary, workdir)
        try:
            for connections in (int(c) for c in args.connections.split(",")):
                result = load(base, process.pid, SCRIPTS[args.script], connections,
                              args.seconds, workdir)
                print(json.dumps({"script": args.script, **result}), flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
