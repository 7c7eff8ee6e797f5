"""Layer 8b: a run's live events for the page, as Server-Sent Events, by polling its files.

First every metrics record so far (event "metric"), then each record as the trainer
appends it; "status" when the run's summary changes, "log" with new job.log text, and
"gone" (then the stream ends) when the folder is deleted. When a resumed run rewrites
metrics.jsonl (it drops the records of the steps it replays), a "reset" event comes
first and the records are sent again from the start. Polling the files (no watcher
library, no state in the server) is what lets any number of tabs and a restarted
studio follow the same run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from llmos.studio import runs
from llmos.studio.job_runner import LOG_FILE

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


def sse(data: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"


class FileTail:
    """The new complete lines of a growing file since the last read (starts over when it shrinks)."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path, self.offset = path, offset

    def read(self) -> tuple[bool, str]:
        """(whether the file was rewritten shorter, the new text up to its last newline)."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return False, ""
        restarted = size < self.offset
        if restarted:
            self.offset = 0
        if size == self.offset:
            return restarted, ""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read(size - self.offset)
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        return restarted, complete.decode("utf-8", errors="replace")


async def run_events(path: Path, poll_seconds: float = POLL_SECONDS) -> AsyncIterator[str]:
    metrics = FileTail(path / "metrics.jsonl")
    log = FileTail(path / LOG_FILE, max(0, _size(path / LOG_FILE) - runs.LOG_TAIL_BYTES))
    last_status: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []  # every record so far, so the summary need not read the file again
    quiet = 0.0
    while True:
        if not runs.is_run(path):
            yield sse({"name": path.name, "message": f"run {path.name!r} was deleted"}, "gone")
            return
        sent = []
        restarted, text = metrics.read()
        if restarted:
            records = []
            sent.append(sse({"name": path.name}, "reset"))
        new_records = runs.parse_records(text)
        records += new_records
        sent += [sse(record, "metric") for record in new_records]
        status = runs.summary(path, metrics=records)
        if status != last_status:
            sent.append(sse(status, "status"))
            last_status = status
        _, log_text = log.read()
        if log_text:
            sent.append(sse({"text": log_text}, "log"))
        quiet = 0.0 if sent else quiet + poll_seconds
        if quiet >= KEEPALIVE_SECONDS:
            sent.append(": keep-alive\n\n")
            quiet = 0.0
        for message in sent:
            yield message
        await asyncio.sleep(poll_seconds)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
