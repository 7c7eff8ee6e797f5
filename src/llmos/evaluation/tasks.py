"""Layer 6 (evaluation): which task a data file is for, when nobody said.

`.txt` (and other plain-text suffixes) is a perplexity corpus; `.tsv`/`.csv`
a labelled classification file; `.jsonl`/`.json` is decided by its first
record: a `label` field means classification, `prompt` or `messages` means
generation.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmos.data.corpus import TEXT_SUFFIXES
from llmos.data.labelled import DataError
from llmos.errors import LLMOSError

TASKS = ("perplexity", "classification", "generation")


def check_task(task: str) -> str:
    if task not in TASKS:
        raise LLMOSError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    return task


def _first_record(path: Path) -> tuple[int, object]:
    with path.open(encoding="utf-8-sig") as f:
        if path.suffix.lower() == ".json" and f.read(4096).lstrip().startswith("["):
            f.seek(0)
            try:
                items = json.load(f)
            except ValueError as exc:
                raise DataError(f"{path}: not valid JSON ({exc})") from None
            return 1, items[0] if items else None
        f.seek(0)
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    return number, json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{path}:{number}: not valid JSON ({exc}): {line.strip()[:60]!r}") from None
    return 0, None


def infer_task(path: str | Path) -> str:
    """The evaluation task for the data file `path` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return "perplexity"
    if suffix in (".tsv", ".csv"):
        return "classification"
    if suffix in (".jsonl", ".json"):
        line, record = _first_record(path)
        if record is None:
            raise DataError(f"{path}: the file holds no examples")
        if isinstance(record, dict):
            if "label" in record:
                return "classification"
            if "prompt" in record or "messages" in record:
                return "generation"
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise DataError(f"{path}:{line}: cannot tell the task from this record ({keys}): classification needs "
                        "'text' and 'label', generation 'prompt' and 'reference' or 'messages'; or pass --task")
    raise DataError(f"{path}: cannot tell the task from the suffix {suffix or '(none)'!r}; use .txt (perplexity), "
                    ".tsv/.csv/.jsonl (classification), .jsonl (generation), or pass --task "
                    f"{'|'.join(TASKS)}")
