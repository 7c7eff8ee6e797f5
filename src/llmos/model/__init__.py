"""Layer 2: the one LLMOS Transformer and its heads."""

from llmos.model.cache import KVCache
from llmos.model.heads import (
    CausalLM,
    MaskedLM,
    PreTrainedModel,
    PreTrainingModel,
    SequenceClassifier,
)
from llmos.model.outputs import (
    CausalLMOutput,
    MaskedLMOutput,
    ModelOutput,
    PreTrainingOutput,
    SequenceClassifierOutput,
)
from llmos.model.transformer import ContextLengthError, Transformer

__all__ = [
    "CausalLM",
    "CausalLMOutput",
    "ContextLengthError",
    "KVCache",
    "MaskedLM",
    "MaskedLMOutput",
    "ModelOutput",
    "PreTrainedModel",
    "PreTrainingModel",
    "PreTrainingOutput",
    "SequenceClassifier",
    "SequenceClassifierOutput",
    "Transformer",
]
