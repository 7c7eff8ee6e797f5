"""Layer 2: the one LLMOS Transformer and its heads."""

from llmos.model.cache import KVCache
from llmos.model.heads import (
    CausalLM,
    MaskedLM,
    ModelOutput,
    PreTrainedModel,
    PreTrainingModel,
    SequenceClassifier,
)
from llmos.model.transformer import ContextLengthError, Transformer

__all__ = [
    "CausalLM",
    "ContextLengthError",
    "KVCache",
    "MaskedLM",
    "ModelOutput",
    "PreTrainedModel",
    "PreTrainingModel",
    "SequenceClassifier",
    "Transformer",
]
