"""Layer 6: training: the loop, objectives, optimizer, schedule, checkpoints, metrics, MFU."""

from llmos.training.objectives import CausalLMObjective, MLMNSPObjective, objective_for
from llmos.training.recipe import RecipeError, TrainConfig
from llmos.training.trainer import Trainer, TrainResult

__all__ = [
    "CausalLMObjective",
    "MLMNSPObjective",
    "RecipeError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "objective_for",
]
