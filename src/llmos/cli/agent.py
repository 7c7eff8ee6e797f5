"""Layer 9: `llmos agent MODEL TASK --tools ...`: let a model call tools until it answers.

Tools are the safe built-ins of `llmos.apps.builtin_tools` (`calculate`,
`current_time`, and the workspace file tools `read_file`, `list_files`,
`write_file` when `--workspace DIR` names the one folder they may touch), the
tools of each MCP server given with `--mcp "CMD ARGS"`, and the tools that
reach outside, which exist only with their allow-list: `http_get` with
`--allow-url PREFIX`, `run_command` with `--allow-command PROGRAM` and
`--workspace DIR` (the folder it runs in, the only one its arguments may name;
see `llmos.apps.shell_policy` for the programs and options it knows). Each
step is printed; `--trace FILE` appends
them as JSONL. With `--server URL` the model is the one `llmos serve` (or any
OpenAI-compatible server honouring `tools` and `tool_choice`) serves at
URL, and MODEL is its id there (`-` for the first one it lists).

Every step is printed as it ends: `[1] calculate({'expression': '17 * 23'}) -> 391`
for a call (its arguments and the tool's result or error), `[2] answer: ...`
for the final answer, `[n] error: ...` for a reply the model could not finish.
"""

from __future__ import annotations

import shlex
from contextlib import ExitStack
from pathlib import Path

import typer

from llmos.cli.runtime_options import read_tools_adapter, tools_adapter_option

BUILTIN = ("calculate", "current_time", "read_file", "list_files", "write_file", "http_get", "run_command")
NEEDS = {"read_file": "--workspace DIR", "list_files": "--workspace DIR", "write_file": "--workspace DIR",
         "http_get": "--allow-url PREFIX", "run_command": "--allow-command PROGRAM"}


def select_tools(tools: str, workspace: Path | None, allow_url: list[str], allow_command: list[str],
                 mcp: list[str], stack: ExitStack, timeout: float = 30.0) -> list:
    """The tools asked for, built-ins by name then every MCP server's; servers are closed with `stack`."""
    from llmos.apps.builtin_tools import Workspace, calculate, current_time
    from llmos.apps.mcp_tools import MCPClient
    from llmos.apps.system_tools import HttpGet, Shell
    from llmos.apps.tool_schema import ToolError

    names = [t.strip() for t in tools.split(",") if t.strip()]
    unknown = [t for t in names if t not in BUILTIN]
    if unknown:
        raise ToolError(f"unknown tool(s) {unknown}; choose from {list(BUILTIN)}")
    available = {"calculate": calculate, "current_time": current_time}
    if workspace is not None:
        available.update({fn.__name__: fn for fn in Workspace(workspace).tools()})
    if allow_url:  # an allow-list is the opt-in: the tool comes with it
        available["http_get"] = HttpGet(allow_url).http_get
        names += ["http_get"] if "http_get" not in names else []
    if allow_command:
        if workspace is None:
            raise ToolError("--allow-command needs --workspace DIR: the folder its programs run in, the only one "
                            "their arguments may name")
        available["run_command"] = Shell(allow_command, cwd=workspace).run_command
        names += ["run_command"] if "run_command" not in names else []
    missing = [t for t in names if t not in available]
    if missing:
        raise ToolError("; ".join(f"tool {t!r} needs {NEEDS[t]}" for t in missing))
    selected = [available[t] for t in names]
    for line in mcp:
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise ToolError(f"--mcp {line!r}: {exc}") from None
        if not argv:
            raise ToolError("--mcp needs the server's command line, e.g. --mcp 'python server.py'")
        selected += stack.enter_context(MCPClient(argv[0], argv[1:], timeout=timeout)).tools
    if not selected:
        raise ToolError("no tools: name some with --tools, or give --mcp, --allow-url or --allow-command")
    return selected


def agent_command(
    model: str = typer.Argument(..., help="Checkpoint directory, GGUF file, adapter directory, name (smollm2) or "
                                          "store name (ollama:NAME:TAG)."),
    task: str = typer.Argument(..., help="What to do."),
    tools: str = typer.Option("calculate,current_time", help=f"Comma-separated, from {', '.join(BUILTIN)}."),
    workspace: Path = typer.Option(None, help="The only folder the file tools may read and write."),
    mcp: list[str] = typer.Option(None, "--mcp", help="An MCP server (stdio) whose tools to add: its command "
                                  "line, e.g. 'python server.py'. Repeatable."),
    allow_url: list[str] = typer.Option(None, "--allow-url", help="Enables http_get for URLs under this prefix, "
                                        "e.g. https://example.org/docs/. Repeatable."),
    allow_command: list[str] = typer.Option(None, "--allow-command", help="Enables run_command for this program "
                                            "(no shell; in --workspace, which it needs; its arguments are checked, "
                                            "see the docs). Repeatable."),
    max_steps: int = typer.Option(6, help="Stop after this many steps."),
    tool_timeout: float = typer.Option(30.0, help="Seconds a tool may run."),
    require_tool: bool = typer.Option(False, "--require-tool", help="The first step must call a tool."),
    trace: Path = typer.Option(None, help="Append every step to this JSONL file."),
    quantize: str = typer.Option("auto", help="auto (as stored), none (float), int8 or int4."),
    server: str = typer.Option(None, help="Use the model an OpenAI-compatible server serves at this URL "
                               "(e.g. http://127.0.0.1:8000/v1); MODEL is its id there, or - for the first."),
    api_key: str = typer.Option(None, envvar="LLMOS_API_KEY", help="The --server's API key."),
    tools_adapter: str = tools_adapter_option(),
) -> None:
    """Run a tool-calling agent on one task."""
    from llmos.apps.agent import Agent

    adapter = read_tools_adapter(tools_adapter)

    with ExitStack() as stack:
        selected = select_tools(tools, workspace, allow_url or [], allow_command or [], mcp or [], stack,
                                timeout=tool_timeout)
        if server is not None:
            from llmos.serving.remote import RemoteGenerator

            brain = RemoteGenerator(server, None if model == "-" else model, api_key)
        else:
            from llmos.generation.loading import load_model

            brain = load_model(model, quantize=quantize, tools_adapter=adapter).generator()
        agent = Agent(brain, None, selected, max_steps=max_steps, tool_timeout=tool_timeout, trace=trace)
        result = agent.run(task, require_tool_first=require_tool, on_step=lambda step: typer.echo(step_line(step)))
    if result.answer is None:
        typer.echo(f"(no answer after {max_steps} steps)")


def step_line(step: dict) -> str:
    """One agent step as `llmos agent` prints it."""
    action, number = step["action"], f"[{step['step']}]"
    if "tool" in action:
        again = " (a repeat: its earlier result)" if step.get("repeated") else ""
        return f"{number} {action['tool']}({action['arguments']}) -> {step['result']}{again}"
    if "error" in action:
        return f"{number} error: {action['error']}"
    return f"{number} answer: {action['answer']}"


def register(app: typer.Typer) -> None:
    app.command("agent")(agent_command)
