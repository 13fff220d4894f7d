"""An MCP server (official Python SDK) over streamable HTTP that reports the W3C trace context a
tool call arrived with: its HTTP `traceparent` header and its `params._meta.traceparent`
(SEP-414). Prints its port, then serves on 127.0.0.1 until killed.
"""

import asyncio
import socket

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("trace-context")


@server.tool()
def trace_context(ctx: Context) -> dict:
    """The traceparent this call arrived with, as an HTTP header and in its _meta."""
    request = ctx.request_context.request
    meta = ctx.request_context.meta or {}
    return {
        "header": request.headers.get("traceparent") if request is not None else None,
        "meta": meta.get("traceparent"),
    }


async def main() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
    await uvicorn.Server(config).serve(sockets=[listener])


if __name__ == "__main__":
    asyncio.run(main())
