"""Layer 6 (evaluation): load the model and tokenizer an evaluation needs, refusing what would mislead.

`load_classifier` refuses a model that is not a trained classifier: a GGUF
file, a checkpoint saved with another head, one whose classification head
would be freshly initialised (random scores are not an evaluation), or a LoRA
adapter saved without its head. A LoRA adapter directory (PEFT format) loads
on its base model, and its tokenizer is the base model's unless it has its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.errors import LLMOSError


def load_classifier(model: str | Path, quantize: str | None = None, dtype: Any = None) -> Any:
    """`AutoModelForSequenceClassification.from_pretrained(model)`, refusing an untrained head.

    `model` may be a LoRA adapter directory (PEFT format) that saved its classification head."""
    from llmos.auto import AutoModelForSequenceClassification
    from llmos.checkpoint import read_config
    from llmos.checkpoint.peft_format import adapter_head_shape, is_adapter_dir
    from llmos.model_names import resolve_model

    if is_adapter_dir(model):
        if not adapter_head_shape(model)[0]:
            raise LLMOSError(f"{model} is a LoRA adapter without a classification head (its head was not saved "
                             "with it); evaluate a classifier adapter, or this one with --task perplexity or "
                             "generation")
        return AutoModelForSequenceClassification.from_pretrained(model, quantize=quantize, dtype=dtype)
    resolved = resolve_model(model)
    if resolved.is_gguf:
        raise LLMOSError(f"{model} is a GGUF file, which holds a language model, not a sequence classifier; "
                         "evaluate a classifier checkpoint directory (e.g. from `llmos finetune`)")
    _, head, _ = read_config(resolved.path)
    if head is not None and head != "SequenceClassifier":
        raise LLMOSError(f"{model} holds a {head}, not a sequence classifier; its classification head would be "
                         "untrained. Fine-tune a classifier first, or evaluate this model with "
                         "--task perplexity or generation")
    loaded, info = AutoModelForSequenceClassification.from_pretrained(resolved.path, quantize=quantize, dtype=dtype,
                                                                      output_loading_info=True)
    if info["missing_keys"]:
        raise LLMOSError(f"{model} has no trained classification head (the checkpoint lacks "
                         f"{info['missing_keys']}, which would be random); fine-tune a classifier first")
    return loaded


def load_tokenizer(model: str | Path) -> Any:
    """The tokenizer of a model; for a LoRA adapter directory without one, its base model's."""
    from llmos.auto import AutoTokenizer
    from llmos.checkpoint.peft_format import is_adapter_dir, read_adapter_config

    if is_adapter_dir(model) and not (Path(model) / "tokenizer.json").is_file():
        base = read_adapter_config(model).get("base_model_name_or_path")
        if not base:
            raise LLMOSError(f"the adapter {str(model)!r} holds no tokenizer and does not name its base model")
        return AutoTokenizer.from_pretrained(base)
    return AutoTokenizer.from_pretrained(model)


def load_causal_lm(model: str | Path, quantize: str | None = None) -> tuple[Any, Any]:
    """(causal LM with its generation_config.json defaults, tokenizer) for a model name or path."""
    from llmos.auto import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(model, quantize=quantize)  # its generation_config loaded there
    return loaded, load_tokenizer(model)
