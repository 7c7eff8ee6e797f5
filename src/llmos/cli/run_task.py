"""Layer 9: `llmos run TASK [MODEL] --input TEXT|FILE`: a task pipeline from the command line.

Everything that can be checked is checked before the model loads (the task,
its options, the input file and its every item, the output's format), so a
typo costs no waiting. `--input` is a file when it names one (.txt, .jsonl,
.csv: a batch, with a progress bar); a value that looks like such a file name
but names none is an error, not a text to translate. One text prints its
result (the text itself, or JSON); a batch prints JSON lines, or writes them to
`--output` as each batch finishes.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import typer

from llmos.cli.console import progress_bar, warnings_as_lines
from llmos.errors import LLMOSError

_FILE_NAME = re.compile(r"\S+\.[A-Za-z][A-Za-z0-9]{0,4}")


def list_tasks() -> str:
    from llmos.apps.pipelines import TASKS, task_class

    lines = [f"{name:<20} {task_class(name)[0].summary}" for name in TASKS]
    return "\n".join([*lines, "", "llmos run TASK --show-template prints a task's prompts, decoding defaults and "
                                  "options; llmos run TASK [MODEL] --input TEXT|FILE runs it"])


def read_input(value: str) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """(the inputs, whether they came from a file)."""
    from llmos.apps.pipelines.batch import INPUT_FORMATS, read_inputs

    path = Path(value)
    looks_like_file = bool(_FILE_NAME.fullmatch(value))
    if looks_like_file and (path.is_file() or path.suffix.lower() in INPUT_FORMATS):
        return read_inputs(path), True
    if looks_like_file and path.is_dir():
        raise LLMOSError(f"--input {value!r} is a folder; give a file (.txt, .jsonl, .csv) or a text")
    return [("input", {"text": value})], False


def run_task(task: str, model: str | None, input: str | None, output: Path | None, batch_size: int | None,
             show_template: bool, system: str | None, template: str | None, question: str | None,
             **options: Any) -> None:
    from llmos.apps.pipelines import DEFAULT_MODEL, pipeline, task_class
    from llmos.apps.pipelines.batch import check_output, normalize_inputs, run_inputs

    cls, implied = task_class(task)
    if show_template:
        typer.echo(cls.describe())
        return
    if input is None:
        raise LLMOSError(f"give --input TEXT or --input FILE (.txt, .jsonl, .csv) for {task}")
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in options.items() if v is not None}
    task_options, _ = cls.split_settings(settings)  # an option this task has not: one line, before loading
    cls.check_options({**cls.options, **implied, **task_options})
    items, from_file = read_input(input)
    named = {"question": question} if question is not None else {}
    normalize_inputs(cls, items, named)
    if output is not None:
        check_output(output)
    extra = {k: v for k, v in (("batch_size", batch_size), ("system", system), ("template", template))
             if v is not None}
    pipe = pipeline(task, model=model or DEFAULT_MODEL, **extra, **settings)
    started = time.perf_counter()
    emit = None
    if output is None:
        emit = _print_row if from_file else lambda row: typer.echo(_human(row))
    with warnings_as_lines(), progress_bar(task, from_file and sys.stderr.isatty()) as progress:
        rows = run_inputs(pipe, items, output, progress=progress, emit=emit, **named)
    if output is not None or from_file:
        where = f"; {len(rows)} row(s) in {output}" if output is not None else ""
        typer.echo(f"ran {len(rows)} item(s) in {time.perf_counter() - started:.1f} s{where}",
                   err=output is None)


def _print_row(row: dict[str, Any]) -> None:
    typer.echo(json.dumps(row, ensure_ascii=False))


def _human(row: dict[str, Any]) -> str:
    """One text's result: the text when it is one, else JSON."""
    values = [v for k, v in row.items() if k != "item"]
    if len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return json.dumps({k: v for k, v in row.items() if k != "item"}, ensure_ascii=False, indent=1)
