"""Layer 8: tools from an MCP server over stdio, as `Tool`s the synchronous Agent can call.

`with mcp_tools("python", ["server.py"]) as tools: Agent(model, tokenizer, tools)`
starts the server, lists its tools and closes the server at the end. Each tool
keeps the server's name, description and `inputSchema`, so constrained
decoding writes arguments the server accepts; its call returns the text of the
server's answer, and an error the server reports becomes a `ToolError` with
the server's message.

A tool's `inputSchema` is embedded in the Agent's action schema, where a
`$ref` to the tool's own `$defs` (pydantic writes them for nested models)
would point at nothing; so local references are inlined first, and a tool
whose schema cannot be (a recursive type) is left out with a warning.

The `mcp` SDK is async and its anyio scopes must be entered and left by one
task, while the Agent calls tools from worker threads. So an `MCPClient` owns
one background thread running one event loop, on which a single task holds the
whole connection (server process, stdio streams, session) from start to
close; a call from any thread is a coroutine handed to that loop and waited on
with a timeout. `mcp` is imported only here, when a server is started: it is
the optional extra `llmos[mcp]`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shlex
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmos.apps.tool_schema import Tool, ToolError

CLOSE_SECONDS = 10.0  # the SDK itself bounds its shutdown (stdin closed, then SIGTERM, then SIGKILL)


def _import_mcp() -> Any:
    try:
        import mcp
    except ImportError:
        raise ToolError("MCP tools need the `mcp` package: pip install 'llmos[mcp]'") from None
    return mcp


def _innermost(exc: BaseException) -> BaseException:
    """The one error inside anyio's exception groups, whose own message says nothing."""
    while len(getattr(exc, "exceptions", ())) == 1:
        exc = exc.exceptions[0]
    return exc


def _stderr() -> Any:
    """Where the server's log goes: our stderr, or the process's when ours is not a file (under pytest)."""
    try:
        sys.stderr.fileno()
        return sys.stderr
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__


def content_text(content: list[dict[str, Any]], structured: Any = None) -> str:
    """The text of an MCP result's content blocks; other blocks by kind, structured content as JSON."""
    parts = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            parts.append(block["text"])
        elif kind == "resource" and "text" in block.get("resource", {}):
            parts.append(block["resource"]["text"])
        else:
            where = block.get("uri") or block.get("resource", {}).get("uri") or block.get("mimeType")
            parts.append(f"[{kind}: {where}]" if where else f"[{kind}]")
    if not parts and structured is not None:
        parts.append(json.dumps(structured))
    return "\n".join(parts)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` with each local `$ref` ("#/$defs/X", "#/definitions/X") replaced by what it names."""
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def expand(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [expand(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if ref is None:
            return {key: expand(value, seen) for key, value in node.items()}
        prefix, _, name = str(ref).rpartition("/")
        if prefix not in ("#/$defs", "#/definitions") or name not in defs:
            raise ToolError(f"cannot resolve $ref {ref!r}: only the schema's own $defs are followed")
        if name in seen:
            raise ToolError(f"$ref {ref!r} is recursive, which cannot be written out inline")
        rest = {key: value for key, value in node.items() if key != "$ref"}
        return expand({**defs[name], **rest}, seen | {name})

    root = {key: value for key, value in schema.items() if key not in ("$defs", "definitions")}
    return expand(root, frozenset())


class MCPClient:
    """One MCP server over stdio, usable from synchronous code and any thread.

    `tools` are the server's tools as `Tool`s (names prefixed with `prefix`, to
    tell two servers apart). `start_timeout` bounds the start (a Python server
    importing its SDK takes seconds), `timeout` each call.
    """

    def __init__(self, command: str, args: Sequence[str] = (), *, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None, timeout: float = 30.0, start_timeout: float = 60.0,
                 prefix: str = "") -> None:
        mcp = _import_mcp()
        self.command, self.timeout, self.prefix = shlex.join([command, *args]), timeout, prefix
        params = mcp.StdioServerParameters(command=command, args=list(args), env=env,
                                           cwd=str(cwd) if cwd is not None else None)
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()
        ready: concurrent.futures.Future[list[dict[str, Any]]] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(self._serve(mcp, params, ready),),
                                        name=f"mcp: {self.command}", daemon=True)
        self._thread.start()
        try:
            listed = ready.result(start_timeout)
        except concurrent.futures.TimeoutError:
            self.close()
            raise ToolError(f"MCP server {self.command!r} did not start within {start_timeout} s") from None
        except Exception as exc:
            self.close()
            raise ToolError(f"cannot start MCP server {self.command!r}: {_innermost(exc)}") from None
        self.tools = []
        for spec in listed:
            try:
                self.tools.append(self._tool(spec))
            except ToolError as exc:
                warnings.warn(f"MCP server {self.command!r}: tool {spec['name']!r} left out: {exc}", stacklevel=2)

    @staticmethod
    def _run(serve: Any) -> None:
        try:
            asyncio.run(serve)
        except asyncio.CancelledError:  # close() cancelled a start that hung; the caller was told
            pass

    async def _serve(self, mcp: Any, params: Any, ready: concurrent.futures.Future) -> None:
        """The one task that holds the connection: open, list the tools, wait for close(), shut down."""
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        try:
            async with mcp.stdio_client(params, errlog=_stderr()) as (read, write), \
                    mcp.ClientSession(read, write) as session:
                await session.initialize()
                listed = await self._list_tools(mcp, session)
                self._session = session
                ready.set_result(listed)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            if isinstance(exc, Exception):
                return  # told to the caller through `ready`, or the connection died: calls will say so
            raise

    @staticmethod
    async def _list_tools(mcp: Any, session: Any) -> list[dict[str, Any]]:
        listed, cursor = [], None
        while True:
            page = await (session.list_tools() if cursor is None else
                          session.list_tools(params=mcp.types.PaginatedRequestParams(cursor=cursor)))
            data = page.model_dump(by_alias=True, exclude_none=True)  # camelCase in mcp 1.x and 2.x alike
            listed += data["tools"]
            cursor = data.get("nextCursor")
            if not cursor:
                return listed

    def _tool(self, spec: dict[str, Any]) -> Tool:
        parameters = inline_refs(spec.get("inputSchema") or {"type": "object", "properties": {}})
        # Servers rarely close their objects; a model should send only the parameters described.
        parameters.setdefault("additionalProperties", False)
        return Tool(name=self.prefix + spec["name"], description=spec.get("description") or "",
                    parameters=parameters, fn=self._caller(spec["name"]))

    def _caller(self, name: str) -> Callable[..., str]:
        def call(**arguments: Any) -> str:
            return self.call(name, arguments)
        return call

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> str:
        """Run the server's tool `name`; its text answer, or ToolError with the server's message."""
        session, closed = self._session, ToolError(f"MCP server {self.command!r} is closed or has exited")
        if session is None or not self._thread.is_alive():
            raise closed
        coroutine = session.call_tool(name, arguments or {})
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError:  # its loop ended in between
            coroutine.close()
            raise closed from None
        try:
            result = future.result(self.timeout).model_dump(by_alias=True, exclude_none=True)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ToolError(f"MCP tool {name!r} did not answer within {self.timeout} s") from None
        except Exception as exc:
            raise ToolError(f"MCP tool {name!r} failed: {_innermost(exc)}") from None
        text = content_text(result.get("content", []), result.get("structuredContent"))
        if result.get("isError"):
            raise ToolError(text or f"MCP tool {name!r} failed")
        return text

    def close(self) -> None:
        """Stop the server process and the thread; calls after this raise ToolError."""
        started = self._session is not None
        self._session = None
        for stop in ((self._stop.set,) if started else ()) + (self._cancel,):  # a clean stop, else cancel
            if not self._thread.is_alive() or self._loop is None:
                return
            try:
                self._loop.call_soon_threadsafe(stop)
            except RuntimeError:  # the loop closed in between
                return
            self._thread.join(CLOSE_SECONDS)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def __enter__(self) -> MCPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def mcp_tools(command: str, args: Sequence[str] = (), **options: Any) -> Iterator[list[Tool]]:
    """The tools of the MCP server `command args` (see `MCPClient` for options); closed on exit."""
    with MCPClient(command, args, **options) as client:
        yield client.tools
