"""Layer 8: a workflow run's memory: the state file of finished items, and the output file made from it.

The state file (`OUTPUT.state.json`, beside the output) maps each finished
item's key to its content digest and its step outputs. It is rewritten whole,
atomically, after every item, and the output file (JSONL or CSV) is written
again from it the same way, so a run stopped anywhere (an error, Ctrl-C, a
crash) keeps every item finished before, and a re-run skips them. An item
whose content changed since (another digest) runs again. The state also
records the workflow's fingerprint (model and steps): results of other steps
are not reused silently; `restart=True` starts over.

The output is derived, never the memory: output fields can change between
runs without running anything again.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from llmos.apps.workflow_inputs import Item, WorkflowError
from llmos.apps.workflow_spec import OutputSpec
from llmos.apps.workflow_templates import evaluate, not_run, plain
from llmos.atomic_files import atomic_write_text

STATE_VERSION = 1


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".state.json")


def item_context(item: Item, outputs: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """What templates see: `item`, every step's output so far, and `not_run` for the others."""
    return {**{name: not_run(name) for name in names}, **outputs, "item": item.data}


class RunState:
    """The finished items of one output file (see the module docstring)."""

    def __init__(self, output: Path, fingerprint: str, restart: bool = False) -> None:
        self.path, self.fingerprint = state_path(output), fingerprint
        self.done: dict[str, dict[str, Any]] = {}
        if restart or not self.path.exists():
            return
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            done, version = saved["items"], saved["version"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise WorkflowError(f"state file {str(self.path)!r} cannot be read ({exc}); delete it or run with "
                                "--restart to start over") from None
        if version != STATE_VERSION or saved.get("fingerprint") != fingerprint:
            raise WorkflowError(f"state file {str(self.path)!r} holds results of another version of this workflow "
                                "(its model or steps changed); run with --restart to start over, or write to "
                                "another --output")
        self.done = done

    def outputs(self, item: Item) -> dict[str, Any] | None:
        """The saved outputs of `item`, or None when it has not finished (or its content changed)."""
        record = self.done.get(item.key)
        return record["outputs"] if record is not None and record["digest"] == item.digest else None

    def finish(self, item: Item, outputs: dict[str, Any]) -> None:
        self.done[item.key] = {"digest": item.digest, "outputs": outputs}
        state = {"version": STATE_VERSION, "fingerprint": self.fingerprint, "items": self.done}
        atomic_write_text(self.path, json.dumps(state, ensure_ascii=False, indent=1) + "\n")


def output_rows(spec: OutputSpec, items: list[Item], state: RunState, names: list[str]) -> list[dict[str, Any]]:
    """One row per finished item, in input order: the output fields, or the key and every step's output."""
    rows = []
    for item in items:
        outputs = state.outputs(item)
        if outputs is None:
            continue
        if spec.fields is None:
            rows.append({"item": item.key, **{name: outputs.get(name) for name in names}})
            continue
        context = item_context(item, outputs, names)
        try:
            rows.append({column: plain(evaluate(expression, context)) for column, expression in spec.fields.items()})
        except Exception as exc:  # a field of a value that has no such field: name the item and the column
            raise WorkflowError(f"output of item {item.key!r}: {type(exc).__name__}: {exc}") from None
    return rows


def write_output(spec: OutputSpec, rows: list[dict[str, Any]]) -> Path:
    if spec.format == "jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
    else:
        flat = [_flatten(row) for row in rows]
        columns = list(dict.fromkeys(column for row in flat for column in row)) or list(spec.fields or {})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in flat)
        text = buffer.getvalue() if columns else ""
    return atomic_write_text(spec.path, text)


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    """A step's JSON object becomes one column per field (`extract.name`), as a spreadsheet wants."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict) and value:
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
