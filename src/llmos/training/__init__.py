"""Layer 6: training: the loop, objectives, optimizer, schedule, checkpoints, metrics, MFU.

The names below load lazily (PEP 562): `llmos pretrain --help` builds its flags
from `training.recipe` alone, so it does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CausalLMObjective": "llmos.training.objectives",
    "MLMNSPObjective": "llmos.training.objectives",
    "objective_for": "llmos.training.objectives",
    "RecipeError": "llmos.training.recipe",
    "TrainConfig": "llmos.training.recipe",
    "Trainer": "llmos.training.trainer",
    "TrainResult": "llmos.training.trainer",
}

__all__ = [
    "CausalLMObjective",
    "MLMNSPObjective",
    "RecipeError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "objective_for",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llmos.training' has no attribute {name!r}")
