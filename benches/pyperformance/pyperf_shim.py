# A stand-in for the `pyperf` module, prepended to each pyperformance benchmark by run.py, so the
# benchmark runs as one plain script in any interpreter (CPython, or codemode's sandbox, which has
# no pyperf and no subprocesses). Each bench_func / bench_time_func runs its function __LOOPS__
# times in this process; nothing is calibrated or spawned, so both interpreters do the same work.
import sys as _sys
import time as _time
import types as _types


_pyperf_shim_spent = [0.0]


def _pyperf_shim_seconds():
    return _pyperf_shim_spent[0]


class _Arguments:
    """The benchmark's command-line options at their defaults: argparse itself needs the
    terminal's size, which reads the environment the sandbox does not have."""

    def __init__(self):
        self.defaults = {}

    def add_argument(self, *names, default=None, action=None, dest=None, **kwargs):
        name = dest or max(names, key=len).lstrip("-").replace("-", "_")
        self.defaults[name] = False if action == "store_true" and default is None else default

    def parse_args(self):
        return _types.SimpleNamespace(**self.defaults)


class _Runner:
    def __init__(self, *args, add_cmdline_args=None, **kwargs):
        self.metadata = {}
        self.argparser = _Arguments()

    def parse_args(self, args=None):
        return self.argparser.parse_args()

    def bench_func(self, name, func, *args, inner_loops=None, **kwargs):
        started = _time.perf_counter()
        for _ in range(__LOOPS__):
            func(*args)
        _pyperf_shim_spent[0] += _time.perf_counter() - started

    def bench_time_func(self, name, func, *args, inner_loops=None, **kwargs):
        started = _time.perf_counter()
        func(__LOOPS__, *args)
        _pyperf_shim_spent[0] += _time.perf_counter() - started

    def bench_async_func(self, name, func, *args, inner_loops=None, **kwargs):
        raise NotImplementedError("async benchmarks are not in the set")


pyperf = _types.ModuleType("pyperf")
pyperf.Runner = _Runner
pyperf.perf_counter = _time.perf_counter
_sys.modules["pyperf"] = pyperf
