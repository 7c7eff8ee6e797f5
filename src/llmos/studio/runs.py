"""Layer 8b: a run folder read into the studio's summary and detail of a run.

The folder is the only state: recipe.yaml and metrics.jsonl (the trainer's),
the `best` / `last` checkpoints, and job.json / job.log (the studio's job wrapper).
The state comes from job.json when the studio ran the job; a run made by the CLI
has none, so it reads as "running" while a process holds the folder's training
lock (`training.run_lock`), else "finished" when its last step reached max_steps
and "stopped" otherwise. The ETA uses the recipe's tokens per step over the last
tokens/s, or else the recent step rate; a recipe with `max_minutes` stops when
that time is up, so the ETA is never later than the time left until then.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from llmos.studio import jobs
from llmos.studio.job_runner import JOB_FILE, LOG_FILE
from llmos.studio.paths import StudioError, quoted
from llmos.studio.settings import StudioSettings
from llmos.training.run_lock import training_pid
from llmos.training.state import is_complete

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RUN_FILES = ("recipe.yaml", "metrics.jsonl", JOB_FILE)
CHECKPOINTS = ("best", "last")
LOG_TAIL_BYTES = 4096


def check_name(name: str) -> str:
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name):
        raise StudioError(f"run name {quoted(name)} is not valid: use letters, digits, '.', '_' or '-' (at most 64, "
                          "starting with a letter or digit)", field="name")
    return name


def run_path(settings: StudioSettings, name: str, must_exist: bool = True) -> Path:
    """The folder of run `name` (404 when `must_exist` and it holds no run)."""
    path = settings.runs_dir / check_name(name)
    if must_exist and not is_run(path):
        raise StudioError(f"run {name!r} does not exist in {str(settings.runs_dir)!r} (deleted or never made)",
                          status=404)
    return path


def is_run(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in RUN_FILES)


def list_runs(settings: StudioSettings) -> list[dict[str, Any]]:
    """Every run's summary, newest first."""
    folders = [p for p in settings.runs_dir.iterdir() if RUN_NAME.fullmatch(p.name) and is_run(p)]
    summaries = [summary(p) for p in folders]
    return sorted(summaries, key=lambda s: s["updated"] or 0, reverse=True)


def read_recipe(path: Path) -> dict[str, Any]:
    return _parsed_once(path / "recipe.yaml", _parse_recipe, {})


def _parse_recipe(text: str) -> dict[str, Any]:
    try:
        recipe = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return recipe if isinstance(recipe, dict) else {}


def read_records(path: Path) -> list[dict[str, Any]]:
    """The metrics records written so far (a line still being written is left for the next read)."""
    return _parsed_once(path / "metrics.jsonl", parse_records, [])


def _parsed_once(file: Path, parse: Callable[[str], Any], missing: Any) -> Any:
    """`parse` of the file's text, parsed again only when its size or modification time changed:
    the runs list polls every run's recipe and metrics every two seconds, and most runs are not
    training. `missing` when the file cannot be read."""
    try:
        stat = file.stat()
        version = (stat.st_size, stat.st_mtime_ns)
        cached = _parsed.get(file)
        if cached is not None and cached[0] == version:
            return cached[1]
        value = parse(file.read_text())
    except OSError:
        _parsed.pop(file, None)
        return missing
    _parsed[file] = (version, value)
    return value


_parsed: dict[Path, tuple[tuple[int, int], Any]] = {}  # file -> ((size, mtime_ns), parsed value)


def parse_records(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n") or not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def summary(path: Path, recipe: dict[str, Any] | None = None,
            metrics: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    recipe = read_recipe(path) if recipe is None else recipe
    metrics = read_records(path) if metrics is None else metrics
    job = jobs.read_job(path)
    train = [r for r in metrics if r.get("kind") == "train"]
    evals = [r for r in metrics if r.get("kind") == "eval" and "val_loss" in r]
    last = train[-1] if train else {}
    step = max((r.get("step", 0) for r in metrics), default=0)
    max_steps = recipe.get("max_steps")
    state = job["state"] if job is not None else _state_without_job(step, max_steps)
    message = job.get("message", "") if job is not None else ""
    trainer = training_pid(path) if state != "running" else None
    if trainer is not None:  # trained by a process the studio did not start (llmos pretrain in a terminal)
        state, message = "running", f"trained by process {trainer}, started outside the studio"
    verb = job["verb"] if job is not None and job.get("verb") in ("pretrain", "finetune") else \
        ("finetune" if "base_model" in recipe else "pretrain")
    return {
        "name": path.name,
        "verb": verb,
        "state": state,
        "message": message,
        "step": step,
        "max_steps": max_steps,
        "loss": last.get("loss"),
        "val_loss": evals[-1]["val_loss"] if evals else None,
        "tokens_per_second": last.get("tokens_per_second"),
        "mfu": last.get("mfu"),
        "eta_s": _eta(train, recipe, step) if state == "running" else None,
        "started": job["started"] if job is not None else _mtime(path / "recipe.yaml"),
        "updated": max((t for t in (_mtime(path / f) for f in (*RUN_FILES, LOG_FILE)) if t), default=None),
        "checkpoints": [c for c in CHECKPOINTS if is_complete(path / c)],
    }


def detail(path: Path) -> dict[str, Any]:
    recipe, metrics = read_recipe(path), read_records(path)
    return {**summary(path, recipe, metrics), "recipe": recipe, "metrics": metrics, "log_tail": log_tail(path)}


def log_tail(path: Path, size: int = LOG_TAIL_BYTES) -> str:
    try:
        with open(path / LOG_FILE, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _state_without_job(step: int, max_steps: Any) -> str:
    return "finished" if isinstance(max_steps, int) and step >= max_steps else "stopped"


def _eta(train: list[dict[str, Any]], recipe: dict[str, Any], step: int) -> float | None:
    """Seconds until the run ends: when its steps are done or its `max_minutes` are up, whichever is sooner
    (a 2-minute run of 100,000 steps ends in 2 minutes, whatever its step rate says)."""
    estimates = [e for e in (_eta_by_steps(train, recipe, step), _time_left(train, recipe)) if e is not None]
    return min(estimates) if estimates else None


def _time_left(train: list[dict[str, Any]], recipe: dict[str, Any]) -> float | None:
    """Seconds left of the recipe's `max_minutes` (the trainer's clock, resumes included), or None."""
    max_minutes, elapsed = recipe.get("max_minutes"), train[-1].get("elapsed") if train else None
    if not isinstance(max_minutes, (int, float)) or max_minutes <= 0 or not isinstance(elapsed, (int, float)):
        return None
    return round(max(0.0, 60 * max_minutes - elapsed), 1)


def _eta_by_steps(train: list[dict[str, Any]], recipe: dict[str, Any], step: int) -> float | None:
    max_steps = recipe.get("max_steps")
    if not isinstance(max_steps, int) or not train:
        return None
    remaining = max(0, max_steps - step)
    tokens_per_step = 1
    for key in ("batch_size", "grad_accum", "context"):
        tokens_per_step *= recipe.get(key) or 1
    tps = train[-1].get("tokens_per_second")
    if tps:
        return round(remaining * tokens_per_step / tps, 1)
    recent = [r for r in train[-10:] if "elapsed" in r]
    if len(recent) >= 2 and recent[-1]["step"] > recent[0]["step"]:
        per_step = (recent[-1]["elapsed"] - recent[0]["elapsed"]) / (recent[-1]["step"] - recent[0]["step"])
        return round(remaining * per_step, 1)
    return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
