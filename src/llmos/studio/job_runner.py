"""Layer 8b: the process that runs one studio job and records what became of it.

`python -m llmos.studio.job_runner RUN_DIR -- ARGV...` starts ARGV with its stdout and
stderr in RUN_DIR/job.log and keeps RUN_DIR/job.json (written atomically) up to date:
state "running" while the child runs, then "finished" (exit 0), "failed" (any other
exit) or "stopped" (a SIGTERM reached this wrapper, which forwards it to the child:
the trainer then saves `last` and exits). It outlives the studio (the studio starts it
in its own session), so a job keeps running and its outcome is still recorded when the
studio is closed; the studio reads only the two files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from llmos.atomic_files import atomic_write_text

JOB_FILE = "job.json"
LOG_FILE = "job.log"


def write_job(run_dir: Path, job: dict[str, Any]) -> None:
    atomic_write_text(run_dir / JOB_FILE, json.dumps(job, indent=2) + "\n")


def run_job(run_dir: Path, argv: list[str], verb: str) -> int:
    """Run `argv` as the job of `run_dir`; returns the child's exit code."""
    run_dir.mkdir(parents=True, exist_ok=True)
    stop_requested = False
    child: subprocess.Popen | None = None

    def forward_stop(signum: int, frame: Any) -> None:
        nonlocal stop_requested
        stop_requested = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward_stop)
    job = {"verb": verb, "argv": argv, "pid": os.getpid(), "child_pid": None, "state": "running",
           "exit_code": None, "started": time.time(), "ended": None, "message": ""}
    with open(run_dir / LOG_FILE, "ab") as log:
        try:
            child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        except OSError as exc:
            write_job(run_dir, {**job, "state": "failed", "ended": time.time(), "message": str(exc)})
            return 127
        write_job(run_dir, {**job, "child_pid": child.pid})
        if stop_requested:  # SIGTERM came before the child existed
            child.send_signal(signal.SIGTERM)
        code = child.wait()
    if stop_requested:
        state, message = "stopped", f"stopped on request (exit code {code})"
    elif code == 0:
        state, message = "finished", ""
    else:
        state, message = "failed", _failure(code, run_dir / LOG_FILE)
    write_job(run_dir, {**job, "child_pid": child.pid, "state": state, "exit_code": code, "ended": time.time(),
                        "message": message})
    return code


def _failure(code: int, log: Path) -> str:
    """Why the job failed: the CLI's own one-line error when the log ends with one."""
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    with open(log, "rb") as f:
        f.seek(max(0, f.seek(0, 2) - 2000))
        lines = f.read().decode("utf-8", errors="replace").strip().splitlines()
    last = lines[-1].strip() if lines else ""
    if last.startswith("error: "):
        return last.removeprefix("error: ")
    return f"exited with code {code}; see job.log"


def main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m llmos.studio.job_runner RUN_DIR -- ARGV...", file=sys.stderr)
        return 2
    argv = args[2:]
    verb = argv[3] if argv[1:3] == ["-m", "llmos"] and len(argv) > 3 else Path(argv[0]).name
    code = run_job(Path(args[0]), argv, verb)
    return code if code >= 0 else 128 - code  # killed by signal N: exit 128 + N, as a shell reports it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
