"""Layer 6: `RunConfig` (the loop knobs every run shares), `TrainConfig` (pretraining) and their YAML recipe form.

The dataclass is the single source of truth: YAML recipes are its fields, the
`llmos pretrain` flags are generated from its fields, and the run directory
keeps a copy (`recipe.yaml`) so every run can be repeated exactly. Fine-tuning adds its
fields in `training.finetune_recipe`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmos.errors import LLMOSError
from llmos.yaml_files import parse_yaml

OBJECTIVES = ("causal", "mlm_nsp")
DTYPES = ("float32", "bfloat16", "auto")
DISTRIBUTED = ("ddp", "fsdp")


class RecipeError(LLMOSError):
    """A recipe (YAML file or CLI override) names an unknown field or an invalid value."""


@dataclass
class RunConfig:
    """The knobs every training run shares (pretraining and fine-tuning): the loop, the
    optimizer, the schedule, checkpoints and logging. Batches are counted in sequences of
    at most `context` tokens.

    `batch_size` is the global micro-batch: under torchrun each of the N processes
    takes batch_size / N of it, so a run's losses do not depend on N. One optimizer
    step sees batch_size * grad_accum sequences.
    """

    out_dir: str = "runs/pretrain"
    context: int = 128
    batch_size: int = 8
    grad_accum: int = 1
    max_steps: int = 1000
    max_minutes: float = 0.0  # stop after this wall time (0 = no limit); the schedule still spans max_steps
    stop_at_step: int = 0  # stop (with a checkpoint) at this step, to resume later (0 = run to max_steps)
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 = no clipping
    dtype: str = "float32"  # float32 | bfloat16 (autocast; weights, optimizer fp32) | auto (bf16 where faster)
    compile: bool = False
    eval_every: int = 250
    eval_batches: int = 20
    log_every: int = 10
    seed: int = 1337
    resume: str = ""  # "" = fresh run, "auto" = out_dir/last if present, or a checkpoint path
    distributed: str = "ddp"  # how to wrap the model under torchrun: ddp | fsdp
    progress: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name, valid in (("dtype", DTYPES), ("distributed", DISTRIBUTED)):
            value = getattr(self, name)
            if value not in valid:
                raise RecipeError(f"{name}={value!r} is not valid; expected one of {list(valid)}", param=name)
        for name in ("context", "batch_size", "grad_accum", "max_steps", "eval_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise RecipeError(f"{name}={value!r} must be a positive integer", param=name)
        for name in ("warmup_steps", "eval_every", "log_every"):
            if getattr(self, name) < 0:
                raise RecipeError(f"{name}={getattr(self, name)!r} must be >= 0", param=name)
        if self.lr <= 0 or not 0 <= self.min_lr <= self.lr:
            raise RecipeError(f"need lr > 0 and 0 <= min_lr <= lr; got lr={self.lr}, min_lr={self.min_lr}",
                              param="min_lr" if self.lr > 0 else "lr")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.context

    # ---- dict / YAML ---------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise RecipeError(f"unknown recipe key(s) {unknown}; valid keys are {cls.field_names()}",
                              param=unknown[0])
        try:
            return cls(**{k: _coerce(cls, k, v) for k, v in data.items()})
        except TypeError as exc:
            raise RecipeError(f"bad recipe: {exc}") from exc

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"recipe file {str(path)!r} does not exist")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise RecipeError(f"recipe {str(path)!r} is not UTF-8 text; a recipe is a YAML file") from None
        data = parse_yaml(text, path, RecipeError) or {}
        if not isinstance(data, dict):
            raise RecipeError(f"recipe {str(path)!r} must be a mapping of {cls.__name__} fields")
        return cls.from_dict(data)

    def save_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        """Apply CLI overrides (None = not given) on top of this recipe."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return type(self).from_dict({**self.to_dict(), **given})


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Accept the string forms a CLI or hand-written YAML may give (a JSON mapping for dicts)."""
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    kind = str(types[name])
    if isinstance(value, str) and kind.startswith("dict"):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise RecipeError(f"{name}={value!r} must be a JSON object, e.g. '{{\"d_model\": 128}}'",
                              param=name) from exc
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind == "int" and isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


@dataclass
class TrainConfig(RunConfig):
    """Every knob of a pretraining run: the shared loop knobs plus data, objective and model."""

    data_dir: str = ""  # token shards written by `llmos.data.prepare`
    objective: str = "causal"  # causal | mlm_nsp
    model: str = "micro"  # a ModelConfig preset
    model_overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields over the preset
    mlm_probability: float = 0.15

    def validate(self) -> None:
        super().validate()
        if self.objective not in OBJECTIVES:
            raise RecipeError(f"objective={self.objective!r} is not valid; expected one of {list(OBJECTIVES)}",
                              param="objective")
        if not isinstance(self.model_overrides, dict):
            raise RecipeError(f"model_overrides={self.model_overrides!r} must be a mapping of ModelConfig fields",
                              param="model_overrides")
