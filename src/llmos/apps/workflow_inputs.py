"""Layer 8: what a workflow runs over: the files of a folder, the rows of a CSV, the records of a JSONL.

Each input becomes an `Item`: a stable `key` (the file's name, `row N`, `line N`)
that names it in messages and in the state file, a `digest` of its content (an
edited input is run again, an unchanged one is skipped on resume), and the
`data` templates see as `item` (a file: `name`, `path`, `text`; a row or a
record: its fields).

Every item is read before the run starts (`--dry-run` too), so one input (a
folder, a CSV or a JSONL file) holds at most `MAX_INPUT_BYTES` and `MAX_ITEMS`
items; past either, the error says so before the rest is read.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.data.jsonl import jsonl_records
from llmos.errors import LLMOSError

INPUT_KINDS = ("folder", "csv", "jsonl")
MAX_INPUT_BYTES = 64 << 20  # bytes of one input: a folder's files together, or one CSV or JSONL file
MAX_ITEMS = 100_000  # items of one input (a day of work for a small model on a CPU)
FILE_FIELDS = ("name", "path", "text")


class WorkflowError(LLMOSError):
    """A workflow file, one of its inputs, or one of its items that cannot be run; the message says where."""


@dataclass(frozen=True)
class InputSpec:
    """`{folder: DIR, pattern: GLOB}`, `{csv: FILE}` or `{jsonl: FILE}`; `path` resolved against the workflow's folder."""

    kind: str
    path: Path
    pattern: str = "*"

    def describe(self) -> str:
        return f"{self.kind} {self.path / self.pattern if self.kind == 'folder' else self.path}"


@dataclass(frozen=True)
class Item:
    key: str
    digest: str
    data: dict[str, Any]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_items(spec: InputSpec) -> list[Item]:
    """Every item of `spec`, in a stable order (file names sorted; rows and lines as in the file)."""
    if spec.kind == "folder":
        return _folder_items(spec)
    if not spec.path.is_file():
        raise WorkflowError(f"inputs: {spec.kind} file {str(spec.path)!r} does not exist")
    check_input_bytes(spec.path, spec.path.stat().st_size)
    items = _csv_items(spec.path) if spec.kind == "csv" else _jsonl_items(spec.path)
    if not items:
        raise WorkflowError(f"inputs: {str(spec.path)!r} holds no rows")
    return items


def item_fields(spec: InputSpec, items: list[Item]) -> set[str] | None:
    """The fields every item has (what `item.X` may name), or None when records differ."""
    if spec.kind == "folder":
        return set(FILE_FIELDS)
    keys = [set(item.data) for item in items]
    return set.intersection(*keys) if all(k == keys[0] for k in keys) else None


def _folder_items(spec: InputSpec) -> list[Item]:
    if not spec.path.is_dir():
        raise WorkflowError(f"inputs: folder {str(spec.path)!r} does not exist or is not a folder")
    files = []
    for path in spec.path.glob(spec.pattern):
        if path.is_file():
            files.append(path)
            _check_count(spec.path, len(files))
    if not files:
        raise WorkflowError(f"inputs: no file in {str(spec.path)!r} matches pattern {spec.pattern!r}")
    check_input_bytes(spec.path, sum(p.stat().st_size for p in files))
    items, left = [], MAX_INPUT_BYTES
    for path in sorted(files):
        with path.open("rb") as f:
            data = f.read(left + 1)  # a file that grew since: still no more than the limit
        left -= len(data)
        if left < 0:
            check_input_bytes(spec.path, MAX_INPUT_BYTES + 1)
        try:
            text = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")  # as read_text() reads
        except UnicodeDecodeError as exc:
            raise WorkflowError(f"inputs: {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        key = path.relative_to(spec.path).as_posix()
        items.append(Item(key, _digest(text), {"name": key, "path": str(path), "text": text}))
    return items


def _csv_items(path: Path) -> list[Item]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if not header or len(set(header)) != len(header) or not all(header):
            raise WorkflowError(f"inputs: {str(path)!r} needs a header row of distinct, non-empty column names; "
                                f"got {header}")
        items = []
        try:
            for number, row in enumerate(reader, 1):
                if None in row:
                    raise WorkflowError(f"inputs: {path}: row {number} has more cells than the header's "
                                        f"{len(header)} columns")
                data = {k: ("" if v is None else v) for k, v in row.items()}
                items.append(Item(f"row {number}", _digest(data), data))
                _check_count(path, len(items))
        except csv.Error as exc:
            raise WorkflowError(f"inputs: {path}: not valid CSV ({exc})") from None
    return items


def _jsonl_items(path: Path) -> list[Item]:
    items = []
    for number, record in jsonl_records(path):
        if not isinstance(record, dict):
            raise WorkflowError(f"inputs: {path}:{number}: expected a JSON object per line, got "
                                f"{type(record).__name__}")
        items.append(Item(f"line {number}", _digest(record), record))
        _check_count(path, len(items))
    return items


def check_input_bytes(path: Path, size: int) -> None:
    if size > MAX_INPUT_BYTES:
        raise WorkflowError(f"inputs: {str(path)!r} holds {size:,} bytes; one input is read whole, so it holds at "
                            f"most {MAX_INPUT_BYTES:,} bytes (split it, or run on parts)")


def _check_count(path: Path, count: int) -> None:
    if count > MAX_ITEMS:
        raise WorkflowError(f"inputs: {str(path)!r} holds more than {MAX_ITEMS:,} items; one input is read whole, "
                            "so it holds at most that many (split it, or run on parts)")
