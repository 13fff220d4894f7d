"""codemode: the runtime every sandboxed script runs in.

Scripts use it as ``import codemode`` (tool calls, fan-out, the exception types); the host uses
``_boot`` once before the snapshot, and the ``_prepare`` it returns once per execution (the
native runner, ``sandbox/src/runner.rs``, runs the script and reports its outcome).

Tool calls
    ``call_tool(client, tool, arguments=None, **kwargs)`` calls a tool and returns its value.
    ``call_tool_async(...)`` starts the call at once (its request leaves immediately) and returns
    a ``PendingCall``: await it, or pass several to ``gather``. Every started call stays in flight
    while the script waits on any of them, so ten calls that each take 100 ms finish together in
    about 100 ms::

        a, b = codemode.gather(call_tool_async("x", "slow"), call_tool_async("y", "slow"))

    ``gather`` also accepts coroutines (``async def`` functions that ``await`` calls), and
    ``run(coroutine)`` drives one to completion. A small ``asyncio`` module with ``run``,
    ``gather`` and ``sleep`` is provided on top of the same scheduler, because the real one needs
    sockets and threads that the sandbox does not have.

Bound servers
    The host passes a manifest of the servers the caller may use; each one is a global of the
    script and importable (``from servers import filesystem``): ``filesystem.read_file(path=...)``
    calls the tool, ``filesystem.read_file_async(...)`` starts it and returns a ``PendingCall``.

Errors
    A tool that fails raises ``ToolError`` (``.server``, ``.tool``); ``ToolTimeoutError`` and
    ``ToolUnavailableError`` are its subclasses, and so is ``AuthRequiredError``: the server
    needs the caller's own OAuth authorization first, which ``.authorize_url`` starts (open it
    in a browser, then run the script again). A tool the caller may not use raises
    ``PermissionError``; a per-call size limit raises ``LimitExceeded``. Limits on the whole run
    (time, memory, number of tool calls) end the run; they cannot be caught.
"""

import sys
import builtins
import _codemode
import _codemode_protocol as _protocol

__all__ = [
    "call_tool",
    "call_tool_async",
    "gather",
    "run",
    "PendingCall",
    "ToolError",
    "ToolTimeoutError",
    "ToolUnavailableError",
    "AuthRequiredError",
    "LimitExceeded",
]

SCRIPT = "<script>"


class LimitExceeded(Exception):
    """A sandbox limit was reached. ``limit`` names it; ``allowed`` and ``observed`` quantify it."""

    def __init__(self, message, limit=None, allowed=None, observed=None):
        super().__init__(message)
        self.limit = limit
        self.allowed = allowed
        self.observed = observed


class ToolError(Exception):
    """A tool call failed upstream. ``server`` and ``tool`` name the call."""

    def __init__(self, message, server=None, tool=None):
        super().__init__(message)
        self.server = server
        self.tool = tool


class ToolTimeoutError(ToolError, TimeoutError):
    """The tool did not answer within its time limit."""


class ToolUnavailableError(ToolError, ConnectionError):
    """The tool's server is not connected."""


class AuthRequiredError(ToolError):
    """The server needs the caller's own OAuth authorization: open ``authorize_url``, then retry."""

    def __init__(self, message, server=None, tool=None, authorize_url=None):
        super().__init__(message, server, tool)
        self.authorize_url = authorize_url


_TOOL_ERRORS = {
    _protocol.TOOL_ERROR: ToolError,
    _protocol.TOOL_TIMEOUT_ERROR: ToolTimeoutError,
    _protocol.TOOL_UNAVAILABLE_ERROR: ToolUnavailableError,
}


def _error_from(error, client, tool):
    """The exception an error response of the host stands for (see ``_codemode_protocol``)."""
    kind = error.get("type", _protocol.TOOL_ERROR)
    message = error.get("message", "tool call failed")
    if kind == _protocol.PERMISSION_ERROR:
        return PermissionError(message)
    if kind == _protocol.LIMIT_EXCEEDED:
        return LimitExceeded(message, error.get("limit"), error.get("allowed"), error.get("observed"))
    if kind == _protocol.TYPE_ERROR:
        return TypeError(message)
    if kind == _protocol.MEMORY_ERROR:
        return MemoryError(message)
    if kind == _protocol.AUTH_REQUIRED_ERROR:
        return AuthRequiredError(message, client, tool, error.get("authorize_url"))
    return _TOOL_ERRORS.get(kind, ToolError)(message, client, tool)


class PendingCall:
    """A tool call that has been started. Await it, call ``.result()``, or ``gather`` several."""

    __slots__ = ("client", "tool", "_id", "_done", "_value", "_error")

    def __init__(self, client, tool, arguments):
        if not isinstance(client, str) or not isinstance(tool, str):
            raise TypeError("client and tool must be strings")
        self.client = client
        self.tool = tool
        self._id = _codemode.call_start(client, tool, arguments)
        self._done = False
        self._value = None
        self._error = None

    def done(self):
        """True once the response has been received."""
        return self._done

    def _wait(self):
        if not self._done:
            response = _codemode.call_wait(self._id)
            if "error" in response:
                self._error = _error_from(response["error"], self.client, self.tool)
            else:
                self._value = response.get("ok")
            self._done = True

    def result(self):
        """Blocks until the call has finished; returns its value or raises its error."""
        self._wait()
        if self._error is not None:
            raise self._error
        return self._value

    def __await__(self):
        if not self._done:
            yield self
        return self.result()

    def __repr__(self):
        state = "done" if self._done else "running"
        return f"<PendingCall {self.client}.{self.tool} {state}>"


def _arguments(arguments, kwargs):
    if arguments is None:
        return kwargs  # a fresh dict for every call already
    if not isinstance(arguments, dict):
        raise TypeError("arguments must be a dict of parameter names to values")
    if kwargs:
        arguments = dict(arguments)
        arguments.update(kwargs)
    return arguments


def call_tool_async(client, tool, arguments=None, **kwargs):
    """Starts ``client``'s ``tool`` and returns a ``PendingCall`` without waiting."""
    return PendingCall(client, tool, _arguments(arguments, kwargs))


# call_tool(client, tool, arguments=None, **kwargs): calls client's tool with arguments (a dict)
# and/or keyword arguments and returns its value. Native: see `_codemode.call_tool`.
call_tool = _codemode.call_tool


class _Tool:
    """One tool of a bound server: call it with keyword arguments (the stub's parameter names, or
    the tool's own) or positional ones in the stub's order. ``<tool>_async`` starts the call and
    returns a ``PendingCall`` instead."""

    __slots__ = ("_label", "_client", "_tool", "_params", "_names", "_start", "_plain", "_required")

    def __init__(self, label, client, spec, start):
        self._label = label
        self._client = client
        self._tool = spec[0]
        self._params = spec[1]
        names = {}
        for ident, real, _required in self._params:
            names[ident] = real
            names[real] = real
        self._names = names
        self._start = start
        # Keyword names that need no translation, and the ones that must be given: a call that
        # uses only these passes its keyword dict on as it is.
        self._plain = frozenset(real for ident, real, _ in self._params if ident == real)
        self._required = frozenset(real for _, real, required in self._params if required)

    def _arguments(self, args, kwargs):
        params = self._params
        label = self._label
        if len(args) > len(params):
            raise TypeError(f"{label}() takes {len(params)} positional arguments but {len(args)} were given")
        arguments = {}
        for param, value in zip(params, args):
            arguments[param[1]] = value
        for key, value in kwargs.items():
            real = self._names.get(key)
            if real is None:
                if params:
                    allowed = ", ".join(p[0] for p in params)
                    raise TypeError(f"{label}() got an unexpected keyword argument {key!r}; its parameters: {allowed}")
                raise TypeError(f"{label}() takes no arguments, but got {key!r}")
            if real in arguments:
                raise TypeError(f"{label}() got multiple values for argument {key!r}")
            arguments[real] = value
        for ident, real, required in params:
            if real not in arguments:
                if required:
                    raise TypeError(f"{label}() missing required argument {ident!r}")
            elif arguments[real] is None and not required:
                # `None` is the stubs' "not given": servers often reject an explicit null.
                del arguments[real]
        return arguments

    def __call__(self, *args, **kwargs):
        if args or not self._plain.issuperset(kwargs) or not self._required.issubset(kwargs) or None in kwargs.values():
            kwargs = self._arguments(args, kwargs)
        if self._start:
            return PendingCall(self._client, self._tool, kwargs)
        return call_tool(self._client, self._tool, kwargs)

    def __repr__(self):
        return f"<tool {self._label}>"


class _Server:
    """A tool server bound for the script: ``filesystem.read_file(path="a.txt")``. Its tools are
    read from the manifest the first time one is used, so unused servers cost nothing; a tool,
    once looked up, is an attribute of the server, so later uses are plain attribute reads."""

    def __init__(self, name, client, entry):
        self.__name = name
        self.__client = client
        self.__entry = entry
        self.__tools = None
        self.__aliases = None

    def __spec(self):
        if self.__tools is None:
            tools = _codemode.loads(self.__entry)
            self.__aliases = {spec[0]: ident for ident, spec in tools.items()}
            self.__tools = tools
        return self.__tools

    def __getattr__(self, name):
        if name.startswith("__") or name.startswith("_Server__"):
            raise AttributeError(name)
        tools = self.__spec()
        ident, start = name, False
        if ident not in tools and ident not in self.__aliases and ident.endswith("_async"):
            ident, start = ident[:-6], True
        if ident not in tools:
            ident = self.__aliases.get(ident, ident)
        spec = tools.get(ident)
        if spec is None:
            raise AttributeError(self.__unknown(name))
        bound = _Tool(f"{self.__name}.{ident}", self.__client, spec, start)
        object.__setattr__(self, name, bound)
        return bound

    def __unknown(self, name):
        import difflib

        names = self.__dir__()
        close = difflib.get_close_matches(name, names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return f"server {self.__name} has no tool {name!r}.{hint} Its tools: {', '.join(names)}"

    def __dir__(self):
        return sorted(self.__spec())

    def __repr__(self):
        return f"<server {self.__name}>"


def _bind(bindings, scope):
    """Makes each server of the manifest a global of the script and a module under ``servers``.

    The manifest has one line per server: ``<python name>\t<client>\t<tools as JSON>``, where
    the JSON maps each tool's Python name to ``[tool name, [[parameter, its name, required]...]]``
    with parameters in the stub's order.
    """
    if not bindings:
        return
    import types

    package = types.ModuleType("servers")
    package.__doc__ = "The tool servers this script may call."
    package.__path__ = []
    for line in bindings.split("\n"):
        if not line:
            continue
        name, client, entry = line.split("\t", 2)
        server = _Server(name, client, entry)
        setattr(package, name, server)
        sys.modules["servers." + name] = server
        scope[name] = server
    sys.modules["servers"] = package


class _Task:
    """One awaitable being driven by the scheduler."""

    __slots__ = ("coro", "call", "waiting", "done", "value", "error")

    def __init__(self, awaitable):
        self.coro = None
        self.call = None
        self.waiting = None
        self.done = False
        self.value = None
        self.error = None
        if isinstance(awaitable, PendingCall):
            self.call = awaitable
            self.waiting = awaitable
        elif hasattr(awaitable, "send") and hasattr(awaitable, "throw"):
            self.coro = awaitable
        elif hasattr(awaitable, "__await__"):
            self.coro = awaitable.__await__()
        else:
            raise TypeError(f"gather() takes tool calls or coroutines, not {type(awaitable).__name__}")

    def ready(self):
        return self.waiting is None or self.waiting.done()

    def step(self):
        """Advances until the task finishes or waits on a call that is still running."""
        if self.call is not None:
            self.done = True
            try:
                self.value = self.call.result()
            except BaseException as e:  # noqa: B036 - handed to the awaiting code
                self.error = e
            return
        while not self.done and self.ready():
            try:
                yielded = self.coro.send(None)
            except StopIteration as stop:
                self.done, self.value = True, stop.value
                return
            except BaseException as e:  # noqa: B036
                self.done, self.error = True, e
                return
            if not isinstance(yielded, PendingCall):
                self.coro.throw(TypeError("only tool calls can be awaited in the sandbox"))
            self.waiting = yielded


def gather(*awaitables, return_exceptions=False):
    """Waits for tool calls and coroutines together; returns their values in order.

    With ``return_exceptions=True`` a failure is returned in its slot instead of raised.
    """
    if len(awaitables) == 1 and isinstance(awaitables[0], (list, tuple)):
        awaitables = tuple(awaitables[0])
    tasks = [_Task(a) for a in awaitables]
    while True:
        progressed = False
        for task in tasks:
            if not task.done and task.ready():
                task.step()
                progressed = True
        pending = [t.waiting for t in tasks if not t.done]
        if not pending:
            break
        if not progressed:
            # Every task waits on a running call: block on the oldest one. All of them run on
            # the host meanwhile, so the order only decides which task resumes first.
            pending[0]._wait()
    results = []
    for task in tasks:
        if task.error is not None:
            if not return_exceptions:
                raise task.error
            results.append(task.error)
        else:
            results.append(task.value)
    return results


def run(awaitable):
    """Drives one coroutine (or pending call) to completion and returns its value."""
    return gather(awaitable)[0]


class _Awaitable:
    """Makes ``await asyncio.gather(...)`` work: the work is already done when it is awaited."""

    __slots__ = ("_thunk",)

    def __init__(self, thunk):
        self._thunk = thunk

    def __await__(self):
        return self._thunk()
        yield  # noqa: unreachable - makes this a generator


def _asyncio_module():
    import types
    import time

    module = types.ModuleType("asyncio")
    module.__doc__ = (
        "codemode's asyncio: run, gather and sleep over the sandbox's tool-call scheduler. "
        "There are no sockets, subprocesses or threads in the sandbox."
    )

    def asyncio_gather(*aws, return_exceptions=False):
        return _Awaitable(lambda: gather(*aws, return_exceptions=return_exceptions))

    def asyncio_sleep(delay, result=None):
        def thunk():
            time.sleep(delay)
            return result

        return _Awaitable(thunk)

    module.run = run
    module.gather = asyncio_gather
    module.sleep = asyncio_sleep
    module.TimeoutError = TimeoutError
    module.iscoroutine = lambda obj: hasattr(obj, "send") and hasattr(obj, "throw")
    return module


class _Stream:
    """sys.stdout / sys.stderr: every write goes straight to the host's capped buffer."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, fd, name):
        self._fd = fd
        self.name = name

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        _codemode.write(self._fd, text)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self):
        return False

    def writable(self):
        return True

    def readable(self):
        return False

    def fileno(self):
        raise OSError("the sandbox's streams have no file descriptor")


# -- lockdown -------------------------------------------------------------------------------------
#
# The real boundary is the host: the guest has no WASI preopens, sockets, environment or args.
# These replacements exist so that a script that tries gets a clear message instead of an obscure
# errno, and so that nothing the model writes can reach a host resource by accident.

_NO_MODULES = {
    "socket": "network access",
    "_socket": "network access",
    "ssl": "network access",
    "_ssl": "network access",
    "select": "network access",
    "selectors": "network access",
    "http.client": "network access",
    "urllib.request": "network access",
    "ftplib": "network access",
    "smtplib": "network access",
    "subprocess": "processes",
    "_posixsubprocess": "processes",
    "multiprocessing": "processes",
    "ctypes": "native code",
    "_ctypes": "native code",
    "mmap": "shared memory",
    "fcntl": "file descriptors",
}


class _Blocked:
    """A meta-path finder that refuses modules that can only reach outside the sandbox."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        what = _NO_MODULES.get(name)
        if what is not None:
            raise ModuleNotFoundError(
                f"No module named '{name}': the sandbox has no {what}. "
                "Tools are the only way out: call them through the server objects.",
                name=name,
            )
        return None


_NO_FILES = "file system; tools are the only way to read or write data"
_NO_PROCESSES = "operating system to reach"

# The stdlib probes some of these with hasattr (random calls os.register_at_fork when os.fork
# exists), so fork stays absent; the rest are defined even where WASI lacks them, so that a script
# reaching for them learns why.
_OS_DENIED = {
    _NO_FILES: (
        "listdir", "scandir", "stat", "lstat", "open", "mkdir", "makedirs", "remove", "unlink",
        "rmdir", "removedirs", "rename", "renames", "replace", "chdir", "chmod", "chown", "link",
        "symlink", "readlink", "truncate", "utime", "walk", "access", "mkfifo", "mknod",
    ),
    _NO_PROCESSES: (
        "system", "popen", "kill", "killpg", "execv", "execve", "execvp",
        "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve", "spawnl",
        "spawnle", "posix_spawn", "posix_spawnp", "putenv", "unsetenv",
    ),
}


def _denied(what, why):
    def denied(*args, **kwargs):
        raise PermissionError(f"{what} is not available in the sandbox: there is no {why}.")

    denied.__name__ = what.rsplit(".", 1)[-1]
    return denied


class _NoEnvironment(dict):
    """os.environ: the sandbox has no environment variables, and says so when asked."""

    def _refuse(self, *args, **kwargs):
        raise PermissionError("os.environ is not available in the sandbox: there are no environment variables")

    __getitem__ = __setitem__ = __delitem__ = get = setdefault = pop = update = _refuse
    copy = keys = items = values = __iter__ = __contains__ = _refuse

    def __repr__(self):
        return "environ({})"


def _lock_down():
    import io
    import os

    builtins.open = io.open = _denied("open", _NO_FILES)
    for why, names in _OS_DENIED.items():
        for name in names:
            setattr(os, name, _denied(f"os.{name}", why))
    os.environ = _NoEnvironment()
    if hasattr(os, "environb"):
        os.environb = _NoEnvironment()
    os.getenv = lambda *a, **k: os.environ.get(*a, **k)
    sys.meta_path.insert(0, _Blocked)
    sys.modules["asyncio"] = _asyncio_module()


# -- running a script -----------------------------------------------------------------------------

PRELUDE = (
    "json", "re", "math", "collections", "itertools", "functools", "datetime", "base64",
    "textwrap", "string", "time", "operator", "copy", "heapq", "bisect", "dataclasses", "enum",
    "typing", "decimal", "fractions", "hashlib", "html", "urllib.parse", "csv", "io", "pprint",
    "traceback", "linecache", "ast", "types", "abc", "contextlib", "difflib", "struct", "uuid",
)


def _boot():
    """Imports the prelude and locks the sandbox down; returns ``_prepare``. Runs before the
    snapshot."""
    import importlib

    for name in PRELUDE:
        importlib.import_module(name)
    # Modules that seed themselves at import would freeze one seed into every execution.
    for seeded in ("random", "secrets", "tempfile"):
        if seeded in sys.modules:
            raise RuntimeError(f"the prelude imported {seeded}, which would freeze its seed into the snapshot")
    _codemode.set_error_factory(_error_from)
    sys.stdout = sys.__stdout__ = _Stream(1, "<stdout>")
    sys.stderr = sys.__stderr__ = _Stream(2, "<stderr>")
    _lock_down()
    return _prepare


def _prepare(code, bindings):
    """The globals of a script about to run: its servers bound, its source known to tracebacks.
    Runs before the script; everything after it is native (``sandbox/src/runner.rs``)."""
    import linecache

    linecache.cache[SCRIPT] = (len(code), None, code.splitlines(True), SCRIPT)
    scope = {"__name__": "__main__", "__builtins__": builtins}
    _bind(bindings, scope)
    return scope
