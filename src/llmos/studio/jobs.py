"""Layer 8b: start, stop and read the studio's jobs: LLMOS verbs run by `job_runner` in a run folder.

A job is only ever `[sys.executable, "-m", "llmos", VERB, ...]` with VERB one of
pretrain, finetune, eval and the rest built here from server-side values, never a
command line from a request. The wrapper process writes job.json; this module reads
it, so a studio restart finds running jobs again. A job.json that says "running"
while its wrapper process is gone (the machine rebooted, the wrapper was killed)
reads as "interrupted".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from llmos.studio.job_runner import JOB_FILE, LOG_FILE
from llmos.studio.paths import StudioError
from llmos.training.run_lock import training_pid

VERBS = ("pretrain", "finetune", "eval")
START_TIMEOUT_S = 20.0
_starting = threading.Lock()  # one start at a time, so two clicks cannot both find a job not running


def read_job(run_dir: Path) -> dict[str, Any] | None:
    """job.json with its state as it stands now ("interrupted" when its wrapper is gone), or None."""
    try:
        job = json.loads((run_dir / JOB_FILE).read_text())
    except (OSError, ValueError):
        return None
    if job.get("state") == "running" and not _alive(job.get("pid")):
        job["state"] = "interrupted"
        job["message"] = "the job's process ended without recording an outcome (killed, or the machine restarted)"
    return job


def is_running(run_dir: Path) -> bool:
    """A job of the studio runs there, or any process is training that run folder (the CLI, say)."""
    job = read_job(run_dir)
    return (job is not None and job["state"] == "running") or training_pid(run_dir) is not None


def start(verb: str, run_dir: Path, args: list[str], what: str = "run") -> dict[str, Any]:
    """Start `llmos VERB ARGS...` as the job of `run_dir`; returns its job.json once the wrapper wrote it."""
    if verb not in VERBS:
        raise StudioError(f"verb {verb!r} cannot run as a studio job; expected one of {list(VERBS)}", field="verb")
    with _starting:
        if is_running(run_dir):
            raise StudioError(f"{what} {run_dir.name!r} is already running", status=409)
        return _start_wrapper(verb, run_dir, [sys.executable, "-m", "llmos", verb, *map(str, args)])


def _start_wrapper(verb: str, run_dir: Path, argv: list[str]) -> dict[str, Any]:
    run_dir.mkdir(parents=True, exist_ok=True)
    wrapper = [sys.executable, "-m", "llmos.studio.job_runner", str(run_dir), "--", *argv]
    with open(run_dir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(wrapper, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=run_dir)
    threading.Thread(target=process.wait, daemon=True).start()  # reap it, so a finished wrapper is not "alive"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        job = read_job(run_dir)
        if job is not None and job.get("pid") == process.pid:
            return job
        if process.poll() is not None:
            break
        time.sleep(0.02)
    raise StudioError(f"the {verb} job did not start; see {run_dir / LOG_FILE}", status=500)


def stop(run_dir: Path, what: str = "run") -> dict[str, Any] | None:
    """Send SIGTERM to the job's wrapper, which forwards it, or to the process training the run folder
    when the studio did not start it; the trainer saves `last` and exits."""
    job = read_job(run_dir)
    if job is not None and job["state"] == "running":
        pid = job["pid"]
    elif (pid := training_pid(run_dir)) is None or pid <= 0:  # trained outside the studio: stop the trainer
        raise StudioError(f"{what} {run_dir.name!r} is not running", status=409)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it ended in between; job.json says how
    return job


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
