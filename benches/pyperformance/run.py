"""CPU-bound Python: pyperformance's benchmarks in codemode's sandbox against CPython (issue 16
item 6).

Each benchmark's own source (`run_benchmark.py` from the pinned `pyperformance` package) runs
as one plain script, with `pyperf_shim.py` in front of it standing in for `pyperf`: every
`bench_func` / `bench_time_func` runs its function LOOPS times in-process. LOOPS is calibrated
once per benchmark on CPython so its work takes about `--target` seconds, and both interpreters
then run the same script. Each side is timed as a whole process (`codemode run` against
`python3`, best of `--repeat`), and also inside the script (the time spent in the benchmark's
functions, which leaves out interpreter start-up). Prints a table and the geometric means; with
`--json FILE` also writes the figures.

    python3 -m venv benches/peers/venv
    benches/peers/venv/bin/pip install -r benches/peers/requirements.txt
    cargo build --release
    benches/peers/venv/bin/python benches/pyperformance/run.py target/release/codemode
"""

import argparse
import json
import math
import pathlib
import statistics
import subprocess
import tempfile
import time

import pyperformance

# The set named by issue 16 item 6, in its order.
BENCHMARKS = [
    "nbody", "richards", "fannkuch", "spectral_norm", "float", "chaos", "deltablue", "go",
    "hexiom", "nqueens", "raytrace", "unpack_sequence", "json_dumps", "json_loads", "generators",
    "coroutines", "comprehensions", "pidigits", "regex_effbot", "deepcopy", "pprint",
    "meteor_contest", "scimark",
]

SHIM = (pathlib.Path(__file__).parent / "pyperf_shim.py").read_text()

# Appended to every script: how long its benchmark functions ran, read back by `timed`.
TRAILER = '\nprint("pyperf-shim-seconds", _pyperf_shim_seconds())\n'


def source(name: str) -> str:
    """The benchmark's own `run_benchmark.py`, as the pinned pyperformance ships it."""
    data = pathlib.Path(pyperformance.__file__).parent / "data-files" / "benchmarks"
    return (data / f"bm_{name}" / "run_benchmark.py").read_text()


def script(name: str, loops: int) -> str:
    """The shim, then the benchmark, then the trailer; `from __future__` lines go first, where
    Python requires them."""
    lines = source(name).splitlines(keepends=True)
    future = [line for line in lines if line.startswith("from __future__ ")]
    body = [line for line in lines if not line.startswith("from __future__ ")]
    shim = SHIM.replace("__LOOPS__", str(loops))
    return "".join(future) + shim + "\n" + "".join(body) + TRAILER


def calibrate(command: list[str], name: str, path: pathlib.Path, target: float) -> int:
    """LOOPS for which `name`'s benchmark functions take about `target` seconds on `command`:
    grown tenfold until a run is long enough to time, then scaled."""
    loops = 1
    while True:
        path.write_text(script(name, loops))
        _, spent = timed(command, path)
        if spent >= target / 10 or loops >= 10**6:
            return max(1, round(loops * target / max(spent, 1e-6)))
        loops *= 10


def timed(command: list[str], path: pathlib.Path) -> tuple[float, float]:
    """Runs `command path`; returns its wall time and the seconds the script's benchmark
    functions reported, both in seconds."""
    started = time.perf_counter()
    done = subprocess.run([*command, str(path)], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} {path} failed:\n{done.stdout[-2000:]}\n"
                         f"{done.stderr[-2000:]}")
    for line in done.stdout.splitlines():
        if line.startswith("pyperf-shim-seconds "):
            return wall, float(line.split()[1])
    raise SystemExit(f"{path} printed no timing:\n{done.stdout[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("codemode", help="the codemode binary (a release build)")
    parser.add_argument("--python", default="python3", help="the CPython to compare with")
    parser.add_argument("--target", type=float, default=1.0,
                        help="seconds of benchmark work per script on CPython")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the best counts")
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else BENCHMARKS
    cpython = [args.python]
    codemode = [args.codemode, "run", "--timeout-ms", "300000", "--memory-mb", "1024"]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            # bm_ in front: a script named like a stdlib module (pprint) would shadow it in CPython.
            path = pathlib.Path(tmp) / f"bm_{name}.py"
            loops = calibrate(cpython, name, path, args.target)
            path.write_text(script(name, loops))
            python_runs = [timed(cpython, path) for _ in range(args.repeat)]
            sandbox_runs = [timed(codemode, path) for _ in range(args.repeat)]
            row = {
                "benchmark": name,
                "loops": loops,
                "cpython_wall": min(w for w, _ in python_runs),
                "codemode_wall": min(w for w, _ in sandbox_runs),
                "cpython_inside": min(s for _, s in python_runs),
                "codemode_inside": min(s for _, s in sandbox_runs),
            }
            row["ratio_wall"] = row["codemode_wall"] / row["cpython_wall"]
            row["ratio_inside"] = row["codemode_inside"] / row["cpython_inside"]
            rows.append(row)
            print(f"{name:16} loops {loops:4}  CPython {row['cpython_wall']:7.3f} s  "
                  f"codemode {row['codemode_wall']:7.3f} s  {row['ratio_wall']:5.2f}x "
                  f"(inside {row['ratio_inside']:5.2f}x)", flush=True)

    def geomean(key: str) -> float:
        return math.exp(statistics.fmean(math.log(r[key]) for r in rows))

    summary = {"geomean_wall": geomean("ratio_wall"), "geomean_inside": geomean("ratio_inside"),
               "python": subprocess.run([args.python, "--version"], capture_output=True,
                                        text=True).stdout.strip()}
    print(f"geometric mean: {summary['geomean_wall']:.2f}x whole process, "
          f"{summary['geomean_inside']:.2f}x inside ({summary['python']})")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"rows": rows, **summary}, indent=1))


if __name__ == "__main__":
    main()
