"""A small MCP server over stdio for the tests: `python mcp_server.py [--pid FILE] [--only TOOL]`.

Not a test module (pytest collects test_*.py only); tests start it as a subprocess.
"""

import argparse
import os
import time
from typing import Literal

from pydantic import BaseModel

try:
    from mcp.server.mcpserver import MCPServer as Server
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server
    from mcp.server.fastmcp.exceptions import ToolError


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def fail(reason: str) -> str:
    """Always fails."""
    raise ToolError(f"refused: {reason}")


def shout(word: Literal["hi", "bye"]) -> str:
    """Upper-case a word."""
    return word.upper()


class Box(BaseModel):
    width: int
    height: int


def area(box: Box) -> int:
    """The area of a box (a nested model: its schema comes with $defs)."""
    return box.width * box.height


def nap(seconds: float) -> str:
    """Sleep."""
    time.sleep(seconds)
    return "awake"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid")
    parser.add_argument("--only")
    options = parser.parse_args()
    if options.pid:
        with open(options.pid, "w") as f:
            f.write(str(os.getpid()))
    server = Server("test")
    for fn in (add, fail, shout, area, nap):
        if options.only in (None, fn.__name__):
            server.tool()(fn)
    server.run()
