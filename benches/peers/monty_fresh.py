"""Monty's fresh pool checkout, the peer of `fresh_execution/print` (issue 16 item 1).

Times, in one process, `with pool.checkout() as session: session.feed_run(code)` for
`print(1+1)`: a fresh REPL session from Monty's warm worker pool, the snippet, the return of the
worker. Prints one JSON object: the median and p99 in microseconds, and how many runs.

Run by `cargo bench --bench sandbox` when `benches/peers/venv/bin/python` exists (see
docs/benchmarks.md); by hand: `benches/peers/venv/bin/python benches/peers/monty_fresh.py 2000`.
"""

import json
import sys
import time

import pydantic_monty


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    printed = []
    with pydantic_monty.Monty(min_processes=1) as pool:
        for _ in range(200):  # warm the pool, as the criterion bench warms up
            with pool.checkout() as session:
                session.feed_run("print(1+1)", print_callback=lambda *a: printed.append(a))
        times = []
        for _ in range(runs):
            started = time.perf_counter_ns()
            with pool.checkout() as session:
                session.feed_run("print(1+1)", print_callback=lambda *a: printed.append(a))
            times.append(time.perf_counter_ns() - started)
    times.sort()
    print(json.dumps({
        "runs": runs,
        "p50_us": times[len(times) // 2] / 1e3,
        "p99_us": times[min(len(times) - 1, len(times) * 99 // 100)] / 1e3,
    }))


if __name__ == "__main__":
    main()
