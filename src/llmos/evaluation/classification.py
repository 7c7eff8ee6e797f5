"""Layer 6 (evaluation): a sequence classifier's accuracy, macro-F1 and confusion on a labelled file.

The file's labels are read against the classifier's own label set
(`config.label_names`, or LABEL_0.. when it has none), so a label the model
does not know is an error naming the line, never a silently wrong score.
Load the model with `evaluation.loading.load_classifier`, which refuses one
whose classification head would be untrained.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from llmos.data.labelled import LabelledData, read_labelled
from llmos.data.sft import right_pad
from llmos.errors import LLMOSError
from llmos.evaluation.metrics import classification_scores

Progress = Callable[[int, int], None]  # (completed, total)


def model_label_names(config: Any) -> list[str]:
    """The classifier's label names, LABEL_i where it has none."""
    return [config.label_name(i) for i in range(config.num_labels)]


def _pad_id(model: Any, tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, model.config.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    eos = model.config.eos_token_ids
    return int(eos[0]) if eos else 0


def encode_batch(tokenizer: Any, texts: list[str], max_length: int, pad_id: int) -> tuple[torch.Tensor,
                                                                                           torch.Tensor, int]:
    """Right-padded input_ids and attention_mask (B, T) for `texts`, and how many were truncated
    to `max_length` (with the tokenizer's own truncation, so special tokens such as [SEP] stay)."""
    rows = tokenizer(texts, return_attention_mask=False, return_token_type_ids=False)["input_ids"]
    long = [i for i, row in enumerate(rows) if len(row) > max_length]
    if long:
        cut = tokenizer([texts[i] for i in long], truncation=True, max_length=max_length,
                        return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        for i, row in zip(long, cut, strict=True):
            rows[i] = row
    input_ids, attention_mask = right_pad(rows, pad_id)
    return input_ids, attention_mask, len(long)


def predict_labels(model: Any, tokenizer: Any, texts: list[str], batch_size: int = 16,
                   progress: Progress | None = None) -> list[int]:
    """The argmax class id for each text, in batches of `batch_size`."""
    return class_probabilities(model, tokenizer, texts, batch_size, progress).argmax(-1).tolist()


def classify(model: Any, tokenizer: Any, texts: str | list[str], batch_size: int = 16,
             top_k: int | None = 1) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
    """Predictions as transformers' text-classification pipeline gives them: for each text the
    `top_k` labels (None = all) as {"label": name, "score": probability}, most likely first;
    top_k=1 gives one dict per text. One string in, one result out."""
    single = isinstance(texts, str)
    probabilities = class_probabilities(model, tokenizer, [texts] if single else texts, batch_size)
    results = ranked_labels(model_label_names(model.config), probabilities, top_k)
    return results[0] if single else results


def ranked_labels(names: list[str], probabilities: torch.Tensor,
                  top_k: int | None = 1) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
    """(N, len(names)) probabilities -> per row the `top_k` labels (None = all) as {"label", "score"},
    most likely first; top_k=1 gives one dict per row."""
    results = []
    for row in probabilities.tolist():
        ranked = sorted(({"label": names[i], "score": p} for i, p in enumerate(row)), key=lambda r: -r["score"])
        results.append(ranked[0] if top_k == 1 else ranked[:top_k])
    return results


@torch.inference_mode()
def class_probabilities(model: Any, tokenizer: Any, texts: list[str], batch_size: int = 16,
                        progress: Progress | None = None) -> torch.Tensor:
    """(len(texts), num_labels) softmax probabilities, in batches of `batch_size`."""
    if batch_size < 1:
        raise LLMOSError(f"batch_size={batch_size} must be at least 1")
    pad_id, max_length = _pad_id(model, tokenizer), model.config.max_seq_len
    rows: list[torch.Tensor] = []
    truncated = 0
    for start in range(0, len(texts), batch_size):
        input_ids, attention_mask, cut = encode_batch(tokenizer, texts[start:start + batch_size], max_length,
                                                      pad_id)
        truncated += cut
        logits = model(input_ids.to(model.device), attention_mask=attention_mask.to(model.device)).logits
        rows.append(logits.float().softmax(-1))
        if progress is not None:
            progress(start + len(rows[-1]), len(texts))
    if truncated:
        warnings.warn(f"{truncated} of {len(texts)} texts were longer than the model's context "
                      f"(max_seq_len={max_length}) and were truncated", UserWarning, stacklevel=2)
    return torch.cat(rows) if rows else torch.zeros(0, model.config.num_labels)


def evaluate_classification(model: Any, tokenizer: Any, data: str | Path | LabelledData, batch_size: int = 16,
                            max_examples: int | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Score a sequence classifier on a labelled file (or already-read `LabelledData`).

    Returns {"n_examples", "metrics": {accuracy, macro_f1}, "label_names", "per_label",
    "confusion_matrix"} (rows: true label, columns: predicted, in label_names order)."""
    if not hasattr(model, "classifier"):
        raise LLMOSError(f"{type(model).__name__} is not a sequence classifier; load one with "
                         "AutoModelForSequenceClassification")
    if model.config.num_labels < 2:
        raise LLMOSError(f"the model has num_labels={model.config.num_labels} (a regression head); "
                         "classification scores need at least 2 labels")
    names = model_label_names(model.config)
    if not isinstance(data, LabelledData):
        data = read_labelled(data, label_names=names)
    elif data.label_names != names:
        raise LLMOSError(f"{data.source}: its label names {data.label_names} differ from the model's {names}; "
                         "read it with read_labelled(path, label_names=...)")
    if max_examples is not None:
        if max_examples < 1:
            raise LLMOSError(f"max_examples={max_examples} must be at least 1")
        data = data.head(max_examples)
    predictions = predict_labels(model, tokenizer, data.texts, batch_size, progress)
    scores = classification_scores(data.labels, predictions, names)
    return {
        "n_examples": len(data),
        "metrics": {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]},
        "label_names": names,
        "per_label": scores["per_label"],
        "confusion_matrix": scores["confusion_matrix"],
    }
