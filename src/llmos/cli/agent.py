"""Layer 9: `llmos agent MODEL TASK --tools ...`: let a model call built-in tools until it answers.

Tools are the safe built-ins of `llmos.apps.builtin_tools`: `calculate`,
`current_time`, and the workspace file tools (`read_file`, `list_files`,
`write_file`) when `--workspace DIR` names the one folder they may touch.
Each step is printed; `--trace FILE` appends them as JSONL.
"""

from __future__ import annotations

from pathlib import Path

import typer

BUILTIN = ("calculate", "current_time", "read_file", "list_files", "write_file")


def agent_command(
    model: str = typer.Argument(..., help="Checkpoint directory, GGUF file, adapter directory or name (smollm2)."),
    task: str = typer.Argument(..., help="What to do."),
    tools: str = typer.Option("calculate,current_time", help=f"Comma-separated, from {', '.join(BUILTIN)}."),
    workspace: Path = typer.Option(None, help="The only folder the file tools may read and write."),
    max_steps: int = typer.Option(6, help="Stop after this many steps."),
    tool_timeout: float = typer.Option(30.0, help="Seconds a tool may run."),
    require_tool: bool = typer.Option(False, "--require-tool", help="The first step must call a tool."),
    trace: Path = typer.Option(None, help="Append every step to this JSONL file."),
    quantize: str = typer.Option("auto", help="auto (as stored), none (float), int8 or int4."),
) -> None:
    """Run a tool-calling agent on one task."""
    from llmos.apps.agent import Agent
    from llmos.apps.builtin_tools import Workspace, calculate, current_time
    from llmos.apps.tool_schema import ToolError
    from llmos.auto import AutoModelForCausalLM, AutoTokenizer

    names = [t.strip() for t in tools.split(",") if t.strip()]
    unknown = [t for t in names if t not in BUILTIN]
    if unknown or not names:
        raise ToolError(f"unknown tool(s) {unknown or names}; choose from {list(BUILTIN)}")
    available = {"calculate": calculate, "current_time": current_time}
    if workspace is not None:
        available.update({fn.__name__: fn for fn in Workspace(workspace).tools()})
    missing = [t for t in names if t not in available]
    if missing:
        raise ToolError(f"tool(s) {missing} work on files: give --workspace DIR, the one folder they may use")
    agent = Agent(AutoModelForCausalLM.from_pretrained(model, quantize=quantize), AutoTokenizer.from_pretrained(model),
                  [available[t] for t in names], max_steps=max_steps, tool_timeout=tool_timeout, trace=trace)
    result = agent.run(task, require_tool_first=require_tool)
    for step in result.steps:
        action = step["action"]
        if "tool" in action:
            typer.echo(f"[{step['step']}] {action['tool']}({action['arguments']}) -> {step['result']}")
        elif "error" in action:
            typer.echo(f"[{step['step']}] {action['error']}")
    typer.echo(result.answer if result.answer is not None else f"(no answer after {max_steps} steps)")


def register(app: typer.Typer) -> None:
    app.command("agent")(agent_command)
