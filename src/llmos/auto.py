"""Layer 4: the Auto* API: one call from a checkpoint directory to a ready model or tokenizer.

`AutoModelFor<Task>.from_pretrained(path, dtype=None, **config_overrides)`
reads an LLMOS or Hugging Face (gpt2, llama, qwen2, mistral, bert) checkpoint
directory and returns our head class in eval mode; `.from_config(config)`
builds a freshly initialised one. `AutoTokenizer` is `llmos.tokenizer.Tokenizer`,
imported on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.checkpoint import load_pretrained
from llmos.config import ModelConfig
from llmos.kernels import use_kernels
from llmos.model.heads import (
    CausalLM,
    MaskedLM,
    PreTrainedModel,
    PreTrainingModel,
    SequenceClassifier,
)


class _AutoModel:
    head: type[PreTrainedModel]

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is not instantiated; use .from_pretrained(path) or .from_config(config)")

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: Any = None, kernels: bool | None = None,
                        **config_overrides: Any) -> PreTrainedModel:
        """Load `path` into this task's head (eval mode); dtype: torch dtype, 'float32', 'bfloat16',
        'float16' or 'auto'. kernels=False keeps plain PyTorch modules (default: the CPU fast
        paths of `llmos.kernels`, unless LLMOS_KERNELS=0)."""
        model = load_pretrained(path, cls.head, dtype=dtype, **config_overrides)
        return use_kernels(model, enabled=kernels)

    @classmethod
    def from_config(cls, config: ModelConfig) -> PreTrainedModel:
        """A freshly initialised model of this task's head for `config`."""
        return cls.head(config)


class AutoModelForCausalLM(_AutoModel):
    head = CausalLM


class AutoModelForMaskedLM(_AutoModel):
    head = MaskedLM


class AutoModelForPreTraining(_AutoModel):
    head = PreTrainingModel


class AutoModelForSequenceClassification(_AutoModel):
    head = SequenceClassifier


class _LazyTokenizer(type):
    """Forward attribute access to `llmos.tokenizer.Tokenizer`, imported on first use."""

    def __getattr__(cls, name: str) -> Any:
        from llmos.tokenizer import Tokenizer

        return getattr(Tokenizer, name)


class AutoTokenizer(metaclass=_LazyTokenizer):
    """`AutoTokenizer.from_pretrained(dir)` returns an `llmos.tokenizer.Tokenizer`."""

    def __init__(self) -> None:
        raise TypeError("AutoTokenizer is not instantiated; use AutoTokenizer.from_pretrained(path)")


__all__ = [
    "AutoModelForCausalLM",
    "AutoModelForMaskedLM",
    "AutoModelForPreTraining",
    "AutoModelForSequenceClassification",
    "AutoTokenizer",
]
