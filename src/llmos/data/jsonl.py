"""Layer 6 (data): JSON Lines files read record by record, every error naming the file and line.

Fine-tuning data, labelled text and generation tasks are all JSONL; this is the
one reader they share (blank lines skipped, a UTF-8 BOM tolerated).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmos.errors import LLMOSError


class DataError(LLMOSError):
    """A data file, or a line of one, that cannot be read as examples; the message says where."""


def jsonl_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed value) for each non-blank line of `path`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    try:
        with path.open(encoding="utf-8-sig") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{path}:{number}: not valid JSON ({exc}): {line.strip()[:60]!r}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
