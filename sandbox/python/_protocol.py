"""The host boundary's vocabulary, as the guest spells it.

Mirrors ``src/executor/protocol.rs`` (a test there keeps these lists equal to its enums): the
``type`` of an error response is one of ``ERROR_KINDS``, spelled as the exception the script
receives; the ``limit`` of a ``LimitExceeded`` is one of ``LIMITS``, spelled as the limit's field.
A tool request is three buffers (client, tool, arguments as JSON); a response is
``{"ok": value}`` or ``{"error": {"type", "message", "limit", "allowed", "observed",
"authorize_url"}}``.
"""

ERROR_KINDS = (
    "ToolError",
    "ToolTimeoutError",
    "ToolUnavailableError",
    "PermissionError",
    "TypeError",
    "LimitExceeded",
    "TimeoutError",
    "MemoryError",
    "RecursionError",
    "InternalError",
    "AuthRequiredError",
)

LIMITS = (
    "timeout_ms",
    "memory_mb",
    "max_output_bytes",
    "max_result_bytes",
    "max_tool_calls",
    "max_tool_arg_bytes",
    "max_tool_result_bytes",
    "wasm_stack",
)

TOOL_ERROR, TOOL_TIMEOUT_ERROR, TOOL_UNAVAILABLE_ERROR, PERMISSION_ERROR, TYPE_ERROR = ERROR_KINDS[:5]
LIMIT_EXCEEDED = ERROR_KINDS[5]
MEMORY_ERROR = ERROR_KINDS[7]
AUTH_REQUIRED_ERROR = ERROR_KINDS[10]
