"""LLMOS: train, adapt, run and serve open language models with code you can read."""

from llmos.auto import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)
from llmos.config import ModelConfig

__version__ = "0.1.0"

__all__ = [
    "AutoModelForCausalLM",
    "AutoModelForMaskedLM",
    "AutoModelForPreTraining",
    "AutoModelForSequenceClassification",
    "AutoTokenizer",
    "ModelConfig",
    "__version__",
]
