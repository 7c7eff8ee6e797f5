"""Layer 4: the Auto* API: one call from a model to a ready model or tokenizer.

`AutoModelFor<Task>.from_pretrained(path, dtype=None, quantize=None, **config_overrides)`
reads an LLMOS or Hugging Face (gpt2, llama, qwen2, mistral, bert) checkpoint
directory, a GGUF file (or a directory plus `gguf_file=NAME`, as in
transformers), or an embedded model's name (`smollm2`; see `model_names`), and
returns our head class in eval mode with the CPU kernels swapped in;
`.from_config(config)` builds a freshly initialised one. `AutoTokenizer` gives
an `llmos.tokenizer.Tokenizer` for the same inputs.

A causal LM comes with `model.generation_config`, a `GenerationConfig` read
here and nowhere else: the directory's generation_config.json (a GGUF file's
metadata: special ids and `general.sampling.*`, over the defaults an embedded
model ships beside its file, see `model_names`), else the model config's
special token ids, as transformers does; `model.generate()` decodes with it and
explicit keyword arguments win. `GenerationConfig` sits in layer 1
(`llmos.generation_config`, beside `ModelConfig`): a dataclass over JSON that
the loader reads, as the model config is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.checkpoint import LoadingInfo, load_pretrained, read_config
from llmos.checkpoint.gguf_load import QUANTIZE_CHOICES, load_gguf, load_gguf_tokenizer
from llmos.checkpoint.peft_format import (
    adapter_head_shape,
    head_names,
    is_adapter_dir,
    load_adapter,
    read_adapter_config,
)
from llmos.checkpoint.pretrained import loading_info
from llmos.checkpoint.quantization import stored_method
from llmos.config import ModelConfig
from llmos.errors import LLMOSError
from llmos.generation_config import GENERATION_CONFIG_NAME, GenerationConfig
from llmos.kernels import quantize as kernel_quantize
from llmos.kernels import use_kernels
from llmos.model.heads import (
    CausalLM,
    MaskedLM,
    PreTrainedModel,
    PreTrainingModel,
    SequenceClassifier,
)
from llmos.model_names import embedded_generation_defaults, resolve_model


class _AutoModel:
    head: type[PreTrainedModel]

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is not instantiated; use .from_pretrained(path) or .from_config(config)")

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: Any = None, quantize: str | None = None,
                        gguf_file: str | None = None, kernels: bool | None = None,
                        adapter: str | Path | dict[str, str | Path] | None = None,
                        output_loading_info: bool = False,
                        **config_overrides: Any) -> PreTrainedModel | tuple[PreTrainedModel, LoadingInfo]:
        """Load `path` (directory, GGUF file or model name) into this task's head, in eval mode.

        dtype: torch dtype, 'float32', 'bfloat16', 'float16' or 'auto'.
        quantize: 'int8' or 'int4' runs the linears weight-only quantized; for a GGUF file
        the default 'auto' keeps its Q4_0/Q4_1 blocks in the int4 kernel and 'none'
        dequantizes everything to float (see `checkpoint.gguf_load`). A directory that
        `llmos quantize` wrote loads as it is stored ('auto', or its own method).
        kernels=False keeps plain PyTorch modules (default: the CPU fast paths of
        `llmos.kernels`, unless LLMOS_KERNELS=0).
        adapter: a LoRA adapter directory (PEFT format) to put on the base, or {name: directory}
        for several (switch with `llmos.adapters.set_adapter` / `using_adapter`). `path` may
        itself be an adapter directory: its base model is then the one it names.
        output_loading_info=True returns `(model, info)` as transformers does (`checkpoint.LoadingInfo`):
        info["missing_keys"] are the head tensors nothing supplied (freshly initialised: an untrained
        head), info["unexpected_keys"] the checkpoint's tensors this head ignores."""
        if is_adapter_dir(path) and gguf_file is None:
            return cls._base_with_adapter(Path(path), dtype, quantize, kernels, adapter, output_loading_info,
                                          config_overrides)
        model, info = cls._load(path, dtype, quantize, gguf_file, kernels, config_overrides)
        if adapter is not None:
            adapters = adapter if isinstance(adapter, dict) else {"default": adapter}
            for name, directory in adapters.items():
                load_adapter(model, directory, name=name, base_label=str(path))
                if adapter_head_shape(directory)[0]:  # the adapter brought a trained head
                    heads = set(head_names(model))
                    info["missing_keys"] = [k for k in info["missing_keys"] if k.split(".")[0] not in heads]
        return (model, info) if output_loading_info else model

    @classmethod
    def _base_with_adapter(cls, directory: Path, dtype: Any, quantize: str | None, kernels: bool | None,
                           more: Any, output_loading_info: bool, config_overrides: dict[str, Any]):
        base = read_adapter_config(directory).get("base_model_name_or_path")
        if not base:
            raise LLMOSError(f"the adapter {str(directory)!r} does not name its base model "
                             "(base_model_name_or_path); load the base with adapter=DIR")
        if cls.head is SequenceClassifier:
            rows, names = adapter_head_shape(directory)
            if rows:
                config_overrides = {"num_labels": rows, "label_names": names, **config_overrides}
        adapters = {"default": directory, **(more if isinstance(more, dict) else {} if more is None
                                             else {"extra": more})}
        return cls.from_pretrained(base, dtype, quantize, None, kernels, adapters, output_loading_info,
                                   **config_overrides)

    @classmethod
    def _load(cls, path: str | Path, dtype: Any, quantize: str | None, gguf_file: str | None,
              kernels: bool | None, config_overrides: dict[str, Any]) -> tuple[PreTrainedModel, LoadingInfo]:
        if quantize is not None and quantize not in QUANTIZE_CHOICES:
            raise LLMOSError(f"quantize={quantize!r} is not valid; expected one of {list(QUANTIZE_CHOICES)}")
        resolved = resolve_model(path, gguf_file)
        if resolved.is_gguf:
            model, info = _gguf_model(resolved.path, cls.head, quantize or "auto", dtype, config_overrides)
        else:
            held = stored_method(read_config(resolved.path)[2])
            if held is not None and quantize not in (None, "auto", held):
                raise LLMOSError(f"{str(resolved.path)!r} is already quantized ({held}); quantize={quantize!r} "
                                 "applies to float checkpoints: load it with quantize='auto', or load the float "
                                 "checkpoint it was made from")
            model, info = load_pretrained(resolved.path, cls.head, dtype=dtype, output_loading_info=True,
                                          **config_overrides)
            if held is None and quantize not in (None, "auto", "none"):
                kernel_quantize(model, quantize)
        if isinstance(model, CausalLM):
            model.generation_config = _generation_config(model, resolved.path, resolved.is_gguf)
        return use_kernels(model, enabled=kernels), info

    @classmethod
    def from_config(cls, config: ModelConfig) -> PreTrainedModel:
        """A freshly initialised model of this task's head for `config`."""
        return cls.head(config)


CLASSIFIER_FIELDS = ("num_labels", "label_names", "pad_token_id")
SPECIAL_IDS = ("bos_token_id", "eos_token_id", "pad_token_id")


def _generation_config(model: CausalLM, path: Path, is_gguf: bool):
    """The decoding defaults `path` ships: generation_config.json, or a GGUF file's metadata (which
    the GGUF loader put on the model as a dict); special ids the file leaves unset come from the
    model config. Without a file: the model config's special ids, as transformers does."""
    if is_gguf:  # the metadata's values, over those an embedded model ships beside its file
        shipped = {**embedded_generation_defaults(path), **(getattr(model, "generation_config", None) or {})}
        loaded = GenerationConfig.from_dict(shipped)
    elif (path / GENERATION_CONFIG_NAME).is_file():
        loaded = GenerationConfig.from_pretrained(path)
    else:
        return GenerationConfig.from_model_config(model.config)
    missing = {name: getattr(model.config, name, None) for name in SPECIAL_IDS if getattr(loaded, name) is None}
    return loaded.replace(**{name: value for name, value in missing.items() if value is not None})


def _gguf_model(path: Path, head: type[PreTrainedModel], quantize: str, dtype: Any,
                overrides: dict[str, Any]) -> tuple[PreTrainedModel, LoadingInfo]:
    """A GGUF file holds a causal LM; a classifier gets its trunk and a fresh head (its missing keys)."""
    allowed = CLASSIFIER_FIELDS if head is SequenceClassifier else ()
    bad = sorted(set(overrides) - set(allowed))
    if bad:
        raise LLMOSError(f"config overrides {bad} do not apply to a GGUF file")
    causal = load_gguf(path, CausalLM, quantize, dtype=dtype)
    if head is CausalLM:
        return causal, loading_info()
    if head is not SequenceClassifier:
        raise LLMOSError(f"{str(path)!r} holds a causal language model; load it with AutoModelForCausalLM "
                         "or AutoModelForSequenceClassification")
    classifier = SequenceClassifier(causal.config.replace(**overrides)).to(causal.dtype)
    classifier.transformer = causal.transformer
    fresh = [k for k in classifier.state_dict() if not k.startswith("transformer.")]
    return classifier.eval(), loading_info(fresh)


class AutoModelForCausalLM(_AutoModel):
    """`from_pretrained(path)`: a causal language model (`CausalLM`: GPT-2, Llama, Qwen2, Mistral, SmolLM)."""

    head = CausalLM


class AutoModelForMaskedLM(_AutoModel):
    """`from_pretrained(path)`: a BERT-style encoder with its masked-LM head (`MaskedLM`), for fill-mask."""

    head = MaskedLM


class AutoModelForPreTraining(_AutoModel):
    """`from_pretrained(path)`: an encoder with both pretraining heads, masked LM and next-sentence prediction."""

    head = PreTrainingModel


class AutoModelForSequenceClassification(_AutoModel):
    """`from_pretrained(path)`: a sequence classifier (`SequenceClassifier`) on any trunk; a checkpoint without
    a trained head gets a fresh one (`output_loading_info=True` says so)."""

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

        if gguf_file is None and is_adapter_dir(path) and not (Path(path) / "tokenizer.json").is_file():
            base = read_adapter_config(path).get("base_model_name_or_path")
            if base:
                return AutoTokenizer.from_pretrained(base)
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
