"""Layer 6 (evaluation): the classifier an evaluation scores, refusing one whose scores would mislead.

Models load through `llmos.generation.loading.load_model`, the one loader;
this adds evaluation's refusals. `load_classifier` refuses a model that is not
a trained classifier: a GGUF file, a checkpoint saved with another head, a
LoRA adapter saved without its head (each before any weight loads), or one
whose classification head came out freshly initialised (the load report's
missing keys: random scores are not an evaluation). A LoRA adapter directory
(PEFT format) loads on its base model, and its tokenizer is the base model's
unless it has its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.errors import LLMOSError
from llmos.generation.loading import LoadedModel, describe_source, load_model


def load_classifier(model: str | Path, quantize: str | None = None, dtype: Any = None,
                    with_tokenizer: bool = True) -> LoadedModel:
    """The classifier `model` holds (with its tokenizer), refusing an untrained head."""
    source = describe_source(model)
    if source.format == "adapter" and source.head != "classifier":
        raise LLMOSError(f"{model} is a LoRA adapter without a classification head (its head was not saved "
                         "with it); evaluate a classifier adapter, or this one with --task perplexity or "
                         "generation")
    if source.is_gguf:
        raise LLMOSError(f"{model} is a GGUF file, which holds a language model, not a sequence classifier; "
                         "evaluate a classifier checkpoint directory (e.g. from `llmos finetune`)")
    if source.head not in (None, "classifier"):
        saved = {"causal-lm": "CausalLM", "masked-lm": "MaskedLM", "pretraining": "PreTrainingModel"}[source.head]
        raise LLMOSError(f"{model} holds a {saved}, not a sequence classifier; its classification head would be "
                         "untrained. Fine-tune a classifier first, or evaluate this model with "
                         "--task perplexity or generation")
    loaded = load_model(model, "classifier", quantize=quantize, dtype=dtype, tokenizer=with_tokenizer)
    if loaded.report.missing_keys:
        raise LLMOSError(f"{model} has no trained classification head (the checkpoint lacks "
                         f"{loaded.report.missing_keys}, which would be random); fine-tune a classifier first")
    return loaded
