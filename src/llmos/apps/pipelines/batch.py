"""Layer 8: a task over a file of inputs: read them, run them in batches, write each result as it finishes.

Inputs: `.txt` (one input per non-blank line), `.jsonl` (one JSON object per
line, its fields named as the task's: `text`, or `context` and `question`...)
or `.csv` (a header row; the same column names). Every input is checked
before anything runs, so an empty one or a missing field stops the run at
once, naming the line or row. Results go to `.jsonl` or `.csv` (the
workflows' writer: a nested JSON object becomes one column per field), one row
per input with its `item` key first. The file is rewritten atomically after
every batch, so a run stopped by a failing item keeps every item finished
before it, and the error names the item that failed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmos.apps.pipelines.base import Pipeline, PipelineError
from llmos.apps.workflow_inputs import InputSpec, WorkflowError, check_input_bytes, read_items
from llmos.apps.workflow_spec import OutputSpec
from llmos.apps.workflow_state import write_output

INPUT_FORMATS = {".txt": "one input per line", ".jsonl": "a JSON object per line", ".csv": "a header row"}
OUTPUT_FORMATS = (".jsonl", ".csv")


def read_inputs(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(key, fields) for each input of the file: key `line N` (.txt, .jsonl) or `row N` (.csv)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in INPUT_FORMATS:
        known = "; ".join(f"{k} ({v})" for k, v in INPUT_FORMATS.items())
        raise PipelineError(f"input file {str(path)!r} is in an unknown format {suffix or '(no suffix)'!r}; "
                            f"give {known}")
    if not path.is_file():
        raise PipelineError(f"input file {str(path)!r} does not exist")
    if suffix == ".txt":
        try:
            check_input_bytes(path, path.stat().st_size)
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as exc:
            raise PipelineError(f"input file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})"
                                ) from None
        except WorkflowError as exc:
            raise PipelineError(str(exc).removeprefix("inputs: ")) from None
        items = [(f"line {n}", {"text": line.strip()}) for n, line in enumerate(lines, 1) if line.strip()]
    else:
        try:
            items = [(item.key, item.data) for item in read_items(InputSpec(suffix[1:], path))]
        except WorkflowError as exc:
            raise PipelineError(str(exc).removeprefix("inputs: ")) from None
    if not items:
        raise PipelineError(f"input file {str(path)!r} holds no inputs")
    return items


def check_output(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise PipelineError(f"output file {str(path)!r}: write .jsonl or .csv")
    return path


def normalize_inputs(task: type[Pipeline], items: list[tuple[str, dict[str, Any]]],
                     named: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every input checked and normalised (`Pipeline.normalize`); the first bad one is an error naming it."""
    normalized = []
    for key, fields in items:
        try:
            normalized.append((key, task.normalize(fields, named)))
        except PipelineError as exc:
            raise PipelineError(f"{key}: {exc}") from None
    return normalized


def run_inputs(pipe: Pipeline, items: list[tuple[str, dict[str, Any]]], output: str | Path | None = None,
               progress: Callable[[int, int], None] | None = None,
               emit: Callable[[dict[str, Any]], None] | None = None, **options: Any) -> list[dict[str, Any]]:
    """Run every input in batches of `pipe.batch_size`; returns the rows written to `output` (and
    given to `emit` as each finishes). `options` go to each call (task options, generate's keywords).
    A batch that fails is run again one input at a time, so the error names the input that failed
    and the ones before it in that batch are kept too."""
    named = {k: options.pop(k) for k in pipe.fields if k in options}
    inputs = normalize_inputs(type(pipe), items, named)
    spec = OutputSpec(check_output(output)) if output is not None else None
    rows: list[dict[str, Any]] = []
    if spec is not None:
        write_output(spec, rows)
    for start in range(0, len(inputs), pipe.batch_size):
        chunk = inputs[start:start + pipe.batch_size]
        try:
            results = pipe([item for _, item in chunk], **options)
        except Exception:  # noqa: BLE001 - find which input failed, keeping the others
            results = None
        for i, (key, item) in enumerate(chunk):
            if results is None:
                try:
                    result = pipe([item], **options)[0]
                except Exception as exc:
                    kept = ""
                    if spec is not None:
                        write_output(spec, rows)
                        kept = f"; the {len(rows)} item(s) before it are in {spec.path}"
                    raise PipelineError(f"{pipe.task}: item {key!r} failed: {exc}{kept}") from exc
            else:
                result = results[i]
            row = {"item": key, **pipe.row(result)}
            rows.append(row)
            if emit is not None:
                emit(row)
        if spec is not None:
            write_output(spec, rows)
        if progress is not None:
            progress(len(rows), len(inputs))
    return rows
