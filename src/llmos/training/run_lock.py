"""Layer 6: one trainer per run folder, and a way to see which process is training one.

While `Trainer.train()` runs, its main process holds an exclusive `flock` on
`<run_dir>/.llmos-train.lock`, which holds its pid. A second trainer on the same
folder (a second `llmos pretrain --resume auto`, a studio Resume while the CLI
trains) is refused with the pid instead of writing over the first one's
checkpoints, and `training_pid(run_dir)` tells anyone (the studio) that a run is
being trained right now, and by whom, whoever started it. The kernel drops the
lock when the process ends, however it ends, so a killed run never leaves a
stale lock. Where `fcntl` does not exist (Windows) there is no lock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from llmos.errors import LLMOSError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".llmos-train.lock"


@contextlib.contextmanager
def training_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the duration; LLMOSError when another process holds it."""
    if fcntl is None:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise LLMOSError(f"{str(run_dir)!r} is being trained by another process (pid {holder}); "
                             "stop it first, or use another out_dir") from None
        try:
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def training_pid(run_dir: Path) -> int | None:
    """The pid of the process training `run_dir` now, or None."""
    path = run_dir / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
