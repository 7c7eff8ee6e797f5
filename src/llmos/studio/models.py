"""Layer 8b: the models the studio knows, the ids requests name them by, and their evaluations.

A model id is what /api/generate and /api/evaluate take:
- an embedded model's name (`smollm2`), or a model in the models folder by its name;
- a store name (`ollama:llama3.2:1b`, `lmstudio:PUBLISHER/REPO/FILE.gguf`): a GGUF file
  in Ollama's or LM Studio's store, looked up among the store's own entries and
  loaded in place (`llmos.model_stores`);
- `models:<path>`: a checkpoint or GGUF file in the models folder;
- `runs:<run>/<checkpoint>`: a run's `best` or `last`;
- a path inside the studio's folders (data, runs, models).
`resolve_model` turns one into what `from_pretrained` and the CLI take, refusing
anything outside those folders. Evaluations are `llmos eval` jobs: a run
checkpoint's go to `<run>/evals/<checkpoint>-<unix time>/`, any other model's to
`<runs_dir>/_evals/<model>-<unix time>/` (a name no run can have); each folder holds
job.json, job.log and the report, and is listed with the model it scored.
"""

from __future__ import annotations

import json
import math
import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from llmos.checkpoint.gguf_file import is_gguf
from llmos.errors import LLMOSError
from llmos.model_names import EMBEDDED, describe, local_models, model_label
from llmos.model_stores import PREFIXES, StoreError, find_store_model, is_store_name
from llmos.studio import jobs
from llmos.studio.paths import StudioError, check_path_text, confined, path_exists, quoted
from llmos.studio.runs import CHECKPOINTS, RUN_NAME, is_run, log_tail
from llmos.studio.settings import StudioSettings
from llmos.training.state import is_complete

OTHER_EVALS = "_evals"  # evaluations of models that are not run checkpoints
REPORT_FILE = "report.json"


MODEL_ID_FORMS = ("an embedded model's name (" + ", ".join(sorted(EMBEDDED)) + "), 'runs:<run>/<checkpoint>' "
                  "(in the runs folder), 'models:<path>' (in the models folder), a store name ("
                  + ", ".join(f"'{p}...'" for p in PREFIXES) + ") or a path inside the studio's folders")


def resolve_model(settings: StudioSettings, model_id: Any, field: str = "model") -> str | Path:
    """What `from_pretrained` and the CLI load for `model_id`: an embedded model's name, or a path
    inside the studio's folders (never one of the folders itself). StudioError: 400 for no id or an unusable
    one, 403 outside the folders, 404 when missing."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise StudioError(f"{field} is missing; give {MODEL_ID_FORMS}", field=field)
    check_path_text(model_id, field, field)
    prefix, colon, rest = model_id.partition(":")
    if is_store_name(model_id):
        try:
            find_store_model(model_id)
        except StoreError as exc:
            raise StudioError(str(exc), status=404, field=field) from None
        return model_id
    if colon and prefix in ("runs", "models"):
        root = settings.runs_dir if prefix == "runs" else settings.models_dir
        path = confined(rest, [root], what=field, field=field)
    elif model_id in EMBEDDED:
        if EMBEDDED[model_id].path() is None:
            raise StudioError(f"the embedded model {model_id!r} is not installed; install it with: "
                              f"{EMBEDDED[model_id].install}", status=404, field=field)
        return model_id
    elif "/" not in model_id and path_exists(settings.models_dir / model_id, model_id, field, field):
        path = confined(model_id, [settings.models_dir], what=field, field=field)  # `..` is a name too
    elif "/" not in model_id and not any(path_exists(root / model_id, model_id, field, field)
                                         for root in settings.data_dirs):
        raise StudioError(f"unknown model {quoted(model_id)}; give {MODEL_ID_FORMS}", field=field)
    else:
        path = confined(model_id, [*settings.data_dirs, settings.runs_dir, settings.models_dir], what=field,
                        field=field)
    if path in (settings.models_dir, settings.runs_dir):
        raise StudioError(f"{field} {quoted(model_id)} is the {'models' if path == settings.models_dir else 'runs'} "
                          f"folder itself, not a model in it; give {MODEL_ID_FORMS}", field=field)
    if not path.exists():
        raise StudioError(f"{field} {quoted(model_id)}: {quoted(path)} does not exist", status=404, field=field)
    return path


def existing_path(value: str, roots: tuple[Path, ...], name: str) -> Path:
    """`value` inside `roots` (403 outside) and existing (400 otherwise); `name` is the request's field."""
    path = confined(value, roots, what=name, field=name)
    if not path.exists():
        raise StudioError(f"{name} {quoted(value)} does not exist", field=name)
    return path


def list_models(settings: StudioSettings) -> list[dict[str, Any]]:
    """Installed embedded models, the models folder's checkpoints and GGUF files, the GGUF files of Ollama's and
    LM Studio's stores, and every run checkpoint."""
    found = []
    for model in local_models(models_folder=settings.models_dir):
        if model.source == "embedded" or is_store_name(model.name):
            found.append(_entry(model.name, model.name, model.source, model.path))
        elif model.source == "models folder":
            found.append(_entry(f"models:{model.name}", model.name, "models folder", model.path))
    for run in sorted(settings.runs_dir.iterdir()):
        if not (RUN_NAME.fullmatch(run.name) and is_run(run)):
            continue
        for checkpoint in CHECKPOINTS:
            if is_complete(run / checkpoint):
                entry = _entry(f"runs:{run.name}/{checkpoint}", f"{run.name}/{checkpoint}", "run", run / checkpoint)
                entry["evals"] = [eval_summary(f) for f in _eval_folders(run / "evals", f"{checkpoint}-")]
                found.append(entry)
    others = [eval_summary(f) for f in _eval_folders(settings.runs_dir / OTHER_EVALS, "")]
    for entry in found:
        if entry["source"] != "run":
            entry["evals"] = [e for e in others if e["model"] == entry["path"] or e["model"] == entry["id"]]
    return found


def _entry(model_id: str, name: str, source: str, path: Path) -> dict[str, Any]:
    stat = path.stat()
    size, architecture, quantization, parameters, config = _described(str(path), stat.st_mtime)
    return {"id": model_id, "name": name, "source": source, "path": str(path), "size_bytes": size,
            "architecture": architecture, "quantization": quantization, "parameters": parameters,
            "config": config, "evals": []}


@lru_cache(maxsize=256)
def _described(path_text: str, mtime: float) -> tuple[int, str, str, int | None, dict[str, Any]]:
    """(size, architecture, quantization, parameters, config) of a checkpoint; cached by path and mtime."""
    path = Path(path_text)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    architecture, quantization = describe(path)
    config: dict[str, Any] = {}
    for name in ("config.json", "adapter_config.json"):
        if path.is_dir() and (path / name).is_file():
            try:
                config = json.loads((path / name).read_text())
            except ValueError:
                config = {}
            if name == "adapter_config.json" and architecture == "?":
                architecture, quantization = "LoRA adapter", "none"
            break
    return size, architecture, quantization, _parameters(path, files), config


def _parameters(path: Path, files: list[Path]) -> int | None:
    try:
        if path.is_file():
            if not is_gguf(path):
                return None
            from llmos.checkpoint.gguf_file import read_gguf_header

            return read_gguf_header(path).parameters
        from safetensors import safe_open

        total = 0
        for file in files:
            if file.suffix == ".safetensors" and file.name.startswith(("model", "adapter_model")):
                with safe_open(str(file), framework="pt") as f:
                    total += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        return total or None
    except (OSError, LLMOSError, ValueError):
        return None


# ---- evaluations -------------------------------------------------------------


def start_evaluation(settings: StudioSettings, body: Any) -> dict[str, Any]:
    """Start `llmos eval MODEL --data DATA [--task T] --report <folder>/report.json` as a job."""
    from llmos.evaluation.tasks import check_task

    if not isinstance(body, dict):
        raise StudioError("the body must be a JSON object with model, data and optionally task")
    model_id = body.get("model", "")
    model = resolve_model(settings, model_id)
    data = existing_path(body.get("data") or "", settings.data_dirs, "data")
    if not data.is_file():
        raise StudioError(f"data {body.get('data')!r} is not a file", field="data")
    args = [model, "--data", str(data)]
    if body.get("task"):
        try:
            args += ["--task", check_task(body["task"])]
        except LLMOSError as exc:
            raise StudioError(str(exc), field="task") from exc
    owner, prefix = _eval_home(settings, model_id)
    folder = _new_folder(owner, prefix)
    job = jobs.start("eval", folder, [*args, "--report", str(folder / REPORT_FILE)], what="evaluation")
    return {"eval": f"{_owner_of(folder)}/{folder.name}", "state": job["state"]}


def eval_path(settings: StudioSettings, owner: str, name: str) -> Path:
    """The folder of evaluation `owner/name` (owner: a run, or _evals); 404 when it is not there."""
    if not RUN_NAME.fullmatch(name) or not (owner == OTHER_EVALS or RUN_NAME.fullmatch(owner)):
        raise StudioError(f"no evaluation {owner + '/' + name!r}", status=404)
    base = settings.runs_dir / owner if owner == OTHER_EVALS else settings.runs_dir / owner / "evals"
    folder = base / name
    if not (folder / jobs.JOB_FILE).is_file():
        raise StudioError(f"no evaluation {owner + '/' + name!r} (deleted or never made)", status=404)
    return folder


def eval_summary(folder: Path) -> dict[str, Any]:
    job = jobs.read_job(folder) or {}
    argv = job.get("argv") or []
    summary = {"name": f"{_owner_of(folder)}/{folder.name}", "state": job.get("state"),
               "message": job.get("message", ""), "model": argv[4] if len(argv) > 4 else None,
               "started": job.get("started"), "ended": job.get("ended")}
    report = read_report(folder)
    for key in ("task", "data", "n_examples", "seconds", "metrics"):
        summary[key] = report.get(key)
    return summary


def eval_detail(folder: Path) -> dict[str, Any]:
    return {**eval_summary(folder), "report": read_report(folder) or None, "log_tail": log_tail(folder)}


def read_report(folder: Path) -> dict[str, Any]:
    try:
        report = json.loads((folder / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}


def _eval_home(settings: StudioSettings, model_id: str) -> tuple[Path, str]:
    """(folder the evaluation goes in, its name's prefix)."""
    if model_id.startswith("runs:"):
        parts = model_id.removeprefix("runs:").strip("/").split("/")
        if len(parts) == 2 and parts[1] in CHECKPOINTS and RUN_NAME.fullmatch(parts[0]):
            return settings.runs_dir / parts[0] / "evals", f"{parts[1]}-"
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", model_label(model_id.partition(":")[2] or model_id)).strip("._-")
    return settings.runs_dir / OTHER_EVALS, f"{(label or 'model')[:40]}-"


def _new_folder(base: Path, prefix: str) -> Path:
    stamp = int(time.time())
    folder, n = base / f"{prefix}{stamp}", 1
    while folder.exists():
        n += 1
        folder = base / f"{prefix}{stamp}-{n}"
    folder.mkdir(parents=True)
    return folder


def _eval_folders(base: Path, prefix: str) -> list[Path]:
    if not base.is_dir():
        return []
    found = [f for f in base.iterdir() if f.name.startswith(prefix) and (f / jobs.JOB_FILE).is_file()]
    return sorted(found, key=lambda f: f.stat().st_mtime)


def _owner_of(folder: Path) -> str:
    return OTHER_EVALS if folder.parent.name == OTHER_EVALS else folder.parent.parent.name
