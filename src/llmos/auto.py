"""Layer 4: the Auto* API: one call from a model to a ready model or tokenizer.

`AutoModelFor<Task>.from_pretrained(path, dtype=None, quantize=None, **config_overrides)`
reads an LLMOS or Hugging Face (gpt2, llama, qwen2, mistral, bert) checkpoint
directory, a GGUF file (or a directory plus `gguf_file=NAME`, as in
transformers), or an embedded model's name (`smollm2`; see `model_names`), and
returns our head class in eval mode with the CPU kernels swapped in;
`.from_config(config)` builds a freshly initialised one. `AutoTokenizer` gives
an `llmos.tokenizer.Tokenizer` for the same inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.checkpoint import load_pretrained, read_config
from llmos.checkpoint.gguf_load import QUANTIZE_CHOICES, load_gguf, load_gguf_tokenizer
from llmos.checkpoint.quantization import stored_method
from llmos.config import ModelConfig
from llmos.errors import LLMOSError
from llmos.kernels import quantize as kernel_quantize
from llmos.kernels import use_kernels
from llmos.model.heads import (
    CausalLM,
    MaskedLM,
    PreTrainedModel,
    PreTrainingModel,
    SequenceClassifier,
)
from llmos.model_names import resolve_model


class _AutoModel:
    head: type[PreTrainedModel]

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is not instantiated; use .from_pretrained(path) or .from_config(config)")

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: Any = None, quantize: str | None = None,
                        gguf_file: str | None = None, kernels: bool | None = None,
                        **config_overrides: Any) -> PreTrainedModel:
        """Load `path` (directory, GGUF file or model name) into this task's head, in eval mode.

        dtype: torch dtype, 'float32', 'bfloat16', 'float16' or 'auto'.
        quantize: 'int8' or 'int4' runs the linears weight-only quantized; for a GGUF file
        the default 'auto' keeps its Q4_0/Q4_1 blocks in the int4 kernel and 'none'
        dequantizes everything to float (see `checkpoint.gguf_load`). A directory that
        `llmos quantize` wrote loads as it is stored ('auto', or its own method).
        kernels=False keeps plain PyTorch modules (default: the CPU fast paths of
        `llmos.kernels`, unless LLMOS_KERNELS=0)."""
        if quantize is not None and quantize not in QUANTIZE_CHOICES:
            raise LLMOSError(f"quantize={quantize!r} is not valid; expected one of {list(QUANTIZE_CHOICES)}")
        resolved = resolve_model(path, gguf_file)
        if resolved.is_gguf:
            if config_overrides:
                raise LLMOSError(f"config overrides {sorted(config_overrides)} do not apply to a GGUF file")
            model = load_gguf(resolved.path, cls.head, quantize or "auto", dtype=dtype)
        else:
            held = stored_method(read_config(resolved.path)[2])
            if held is not None and quantize not in (None, "auto", held):
                raise LLMOSError(f"{str(resolved.path)!r} is already quantized ({held}); quantize={quantize!r} "
                                 "applies to float checkpoints: load it with quantize='auto', or load the float "
                                 "checkpoint it was made from")
            model = load_pretrained(resolved.path, cls.head, dtype=dtype, **config_overrides)
            if held is None and quantize not in (None, "auto", "none"):
                kernel_quantize(model, quantize)
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
    """`AutoTokenizer.from_pretrained(path)` returns an `llmos.tokenizer.Tokenizer`."""

    def __init__(self) -> None:
        raise TypeError("AutoTokenizer is not instantiated; use AutoTokenizer.from_pretrained(path)")

    @staticmethod
    def from_pretrained(path: str | Path, gguf_file: str | None = None):
        """The tokenizer of a checkpoint directory, a GGUF file (or directory + gguf_file) or a model name."""
        from llmos.tokenizer import Tokenizer

        resolved = resolve_model(path, gguf_file)
        if resolved.is_gguf:
            return load_gguf_tokenizer(resolved.path)
        return Tokenizer.from_pretrained(resolved.path)


__all__ = [
    "AutoModelForCausalLM",
    "AutoModelForMaskedLM",
    "AutoModelForPreTraining",
    "AutoModelForSequenceClassification",
    "AutoTokenizer",
]
