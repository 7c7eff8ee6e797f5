"""A small MCP server over stdio, for the agent examples (pip install 'llmos[mcp]')."""

try:
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server

server = Server("notes")


@server.tool()
def count_words(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


@server.tool()
def count_lines(text: str) -> int:
    """Count the lines in a text."""
    return len(text.splitlines())


if __name__ == "__main__":
    server.run()
