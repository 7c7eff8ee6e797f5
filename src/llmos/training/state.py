"""Layer 6: trainer checkpoints, written atomically, and exact resume.

A checkpoint directory is a model checkpoint (config.json + model.safetensors,
plus tokenizer files when there is a tokenizer, via the checkpoint layer's
`save_pretrained`), so `from_pretrained`, `llmos generate` and `llmos chat`
read it as is, plus the trainer's state:

- `optimizer.safetensors`: every optimizer state tensor (AdamW moments and step
  counts, keyed by parameter name) and the torch RNG states. Never pickle.
- `trainer_state.json`: the scalars: step, best validation loss, tokens seen,
  optimizer hyperparameters, Python and NumPy RNG states, the data position,
  the recipe and the model config.

Atomicity: everything is written into `<name>.tmp`, fsynced, and only then
swapped in by renames (`<name>` -> `<name>.old`, `<name>.tmp` -> `<name>`), so a
process killed at any moment leaves either the previous checkpoint or the new
one; `resolve_checkpoint` finds whichever survived.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from llmos.atomic_files import fsync_tree, replace_directory
from llmos.checkpoint.safetensors_io import CheckpointError
from llmos.config import ModelConfig

TRAINER_STATE = "trainer_state.json"
OPTIMIZER_STATE = "optimizer.safetensors"
MODEL_WEIGHTS = "model.safetensors"
# Test hook: "SECONDS@N" sleeps SECONDS in the middle of this process's N-th checkpoint write
# (to kill a process exactly there); "SECONDS" alone sleeps in every write.
SLEEP_IN_SAVE_ENV = "LLMOS_TEST_SLEEP_IN_SAVE"
_writes_done = 0


# ---- RNG ---------------------------------------------------------------------


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, JSON scalars) capturing every random generator the run uses."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    scalars = {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return tensors, scalars


def set_rng_state(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = scalars["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = scalars["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


# ---- optimizer state ---------------------------------------------------------


def flatten_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """torch's optimizer state dict -> (named tensors, JSON-able param groups)."""
    tensors = {}
    for param_key, slots in state["state"].items():
        for slot, value in slots.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{param_key}.{slot}"] = value.detach().cpu().contiguous()
    return tensors, state["param_groups"]


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], groups: list[dict]) -> dict[str, Any]:
    state: dict[Any, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if not key.startswith("state."):
            continue
        param_key, slot = key[len("state."):].rsplit(".", 1)
        param_key = int(param_key) if param_key.isdigit() else param_key
        state.setdefault(param_key, {})[slot] = value
    return {"state": state, "param_groups": groups}


# ---- writing -----------------------------------------------------------------


def save_model_files(model: nn.Module, directory: Path, tokenizer: Any = None) -> None:
    """The model checkpoint part: the checkpoint layer's save_pretrained when present,
    otherwise config.json + model.safetensors (tied weights stored once)."""
    if hasattr(model, "save_pretrained"):
        kwargs = {"tokenizer": tokenizer} if tokenizer is not None else {}
        model.save_pretrained(directory, **kwargs)
        return
    model.config.save(directory / "config.json")
    seen, weights = set(), {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        weights[name] = tensor.detach().cpu().contiguous()
    save_file(weights, str(directory / MODEL_WEIGHTS), metadata={"format": "pt"})


class ModelFiles(Protocol):
    """How the model part of a trainer checkpoint is written and read back."""

    def save(self, model: nn.Module, directory: Path, tokenizer: Any = None) -> None: ...

    def load(self, model: nn.Module, directory: Path) -> None: ...


class WholeModel:
    """The default: the whole model, as `from_pretrained` reads it."""

    def save(self, model: nn.Module, directory: Path, tokenizer: Any = None) -> None:
        save_model_files(model, directory, tokenizer)

    def load(self, model: nn.Module, directory: Path) -> None:
        load_model_weights(model, directory)


def write_checkpoint(
    target: str | Path,
    model: nn.Module,
    optimizer_state: dict[str, Any],
    trainer_state: dict[str, Any],
    tokenizer: Any = None,
    model_files: ModelFiles | None = None,
) -> Path:
    """Write a complete checkpoint at `target` atomically (see module docstring)."""
    target = Path(target)
    tmp, old = target.with_name(target.name + ".tmp"), target.with_name(target.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (model_files or WholeModel()).save(model, tmp, tokenizer)
    opt_tensors, groups = flatten_optimizer_state(optimizer_state)
    rng_tensors, rng_scalars = rng_state()
    save_file({**opt_tensors, **rng_tensors}, str(tmp / OPTIMIZER_STATE), metadata={"format": "pt"})
    _test_hook_sleep()
    state = {**trainer_state, "optimizer_param_groups": groups, "rng": rng_scalars}
    (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=1))
    fsync_tree(tmp)
    replace_directory(tmp, target, old)
    return target


def _test_hook_sleep() -> None:
    global _writes_done
    _writes_done += 1
    hook = os.environ.get(SLEEP_IN_SAVE_ENV)
    if not hook:
        return
    seconds, _, nth = hook.partition("@")
    if not nth or int(nth) == _writes_done:
        time.sleep(float(seconds))


# ---- reading -----------------------------------------------------------------


def is_complete(directory: Path) -> bool:
    return (directory / TRAINER_STATE).is_file() and (directory / OPTIMIZER_STATE).is_file()


def resolve_checkpoint(path: str | Path) -> Path:
    """The complete checkpoint at `path`, or the previous one a killed save left at `path.old`."""
    path = Path(path)
    for candidate in (path, path.with_name(path.name + ".old")):
        if candidate.is_dir() and is_complete(candidate):
            return candidate
    raise CheckpointError(
        f"no complete trainer checkpoint at {str(path)!r} (expected {TRAINER_STATE} and "
        f"{OPTIMIZER_STATE} there); pass the run's 'last' or 'best' directory"
    )


def read_trainer_state(directory: Path) -> dict[str, Any]:
    return json.loads((directory / TRAINER_STATE).read_text())


def check_same_config(saved: dict[str, Any], current: ModelConfig, where: Path) -> None:
    """Refuse to resume weights of a differently shaped model; name the differing fields."""
    now = current.to_dict()
    ignore = {"model_type", "extra", "family"}
    differ = sorted(k for k in set(saved) | set(now) if k not in ignore and saved.get(k) != now.get(k))
    if differ:
        details = ", ".join(f"{k}: checkpoint={saved.get(k)!r} run={now.get(k)!r}" for k in differ)
        raise CheckpointError(
            f"cannot resume {str(where)!r}: its model config differs from this run's in {details}"
        )


def load_model_weights(model: nn.Module, directory: Path) -> None:
    """Load model.safetensors into `model` (tied weights may be stored once)."""
    try:
        from llmos.checkpoint.safetensors_io import LazyStateDict  # handles sharded weights too

        lazy = LazyStateDict(directory)
        weights = dict(lazy.items())
        lazy.close()
    except ImportError:
        weights = load_file(str(directory / MODEL_WEIGHTS))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    names_of: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(p), []).append(name)
    loaded_elsewhere = {n for names in names_of.values() if any(x in weights for x in names) for n in names}
    missing = [m for m in missing if m not in loaded_elsewhere]
    if missing or unexpected:
        raise CheckpointError(
            f"{str(directory / MODEL_WEIGHTS)!r} does not match the model: missing {missing}, "
            f"unexpected {unexpected}"
        )


def read_optimizer_and_rng(directory: Path, groups: list[dict]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    tensors = load_file(str(directory / OPTIMIZER_STATE))
    rng = {k: v for k, v in tensors.items() if k.startswith("rng.")}
    return unflatten_optimizer_state(tensors, groups), rng
