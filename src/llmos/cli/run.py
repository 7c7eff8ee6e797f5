"""Layer 9: `llmos run WORKFLOW.yaml`: run a workflow over its inputs, resumably (`llmos.apps.workflow`).

The workflow is checked whole before anything loads; `--dry-run` prints the
plan (steps, inputs found, output, items left) without loading the model.
Finished items are skipped on a re-run; a failing item stops the run with
one line naming it, every item before it kept. The first argument is a
workflow file; task pipelines will share this verb with other arguments.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from llmos.cli.console import progress_bar, warnings_as_lines


def run_command(
    workflow: str = typer.Argument(..., help="A workflow file (.yaml or .yml)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the workflow and print the plan; load and write "
                                                          "nothing."),
    output: Path = typer.Option(None, help="Write results here (.jsonl or .csv) instead of the workflow's output."),
    model: str = typer.Option(None, help="Use this model instead of the workflow's (a name, GGUF file or "
                                         "checkpoint directory)."),
    limit: int = typer.Option(None, help="Run only the first N items."),
    restart: bool = typer.Option(False, "--restart", help="Forget finished items and run everything again."),
) -> None:
    """Run a workflow file: LLM, tool, agent, branch and map steps over a folder, CSV or JSONL."""
    from llmos.apps.workflow import describe, load_workflow, run_workflow

    spec = load_workflow(workflow, model=model, output=output)
    if dry_run:
        typer.echo("\n".join(describe(spec, limit, restart)))
        return
    loaded = {}
    if spec.needs_model():
        from llmos.auto import AutoModelForCausalLM, AutoTokenizer

        loaded = {"model": AutoModelForCausalLM.from_pretrained(spec.model),
                  "tokenizer": AutoTokenizer.from_pretrained(spec.model)}
    started = time.perf_counter()
    with warnings_as_lines(), progress_bar(Path(workflow).stem, sys.stderr.isatty()) as progress:
        summary = run_workflow(spec, limit=limit, restart=restart, progress=progress, **loaded)
    typer.echo(f"ran {summary.ran} item(s), skipped {summary.skipped} done before, in "
               f"{time.perf_counter() - started:.1f} s; {summary.rows} row(s) in {summary.output}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
