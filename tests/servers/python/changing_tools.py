"""An MCP server (official Python SDK) whose tool list changes at run time.

`unlock` adds the tool `secret` and sends notifications/tools/list_changed, so a client that
listens for the notification can call `secret` without reconnecting.
"""

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("changing-tools")


def secret() -> str:
    """Only listed after `unlock`."""
    return "unlocked"


@server.tool()
async def unlock(ctx: Context) -> str:
    """Adds the tool `secret` and tells the client its tools changed."""
    server.add_tool(secret)
    await ctx.session.send_tool_list_changed()
    return "added secret"


if __name__ == "__main__":
    server.run()
