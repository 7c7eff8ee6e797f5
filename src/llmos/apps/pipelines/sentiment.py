"""Layer 8: the `sentiment-analysis` task: a text -> its label and the label's probability.

Two ways, chosen by the model given:
- a fine-tuned sequence classifier (a checkpoint or LoRA adapter saved with its
  head, e.g. from `llmos finetune --task classification`) predicts its own labels
  (`evaluation.classification.classify`);
- a causal LM answers zero-shot: asked whether the text is negative or positive
  (or the `labels` you give), each label's score is the probability that the
  reply begins with that word (`evaluation.zero_shot`), normalised over the
  labels. Nothing is decoded, so the answer is always one of the labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.apps.pipelines.base import Pipeline, PipelineError, load_causal_lm
from llmos.evaluation.classification import class_probabilities, model_label_names, ranked_labels

ZERO_SHOT_LABELS = ["negative", "positive"]


def is_classifier_checkpoint(model: str | Path) -> bool:
    """Whether `model` names a saved sequence classifier (directory or LoRA adapter with its head)."""
    from llmos.checkpoint import read_config
    from llmos.checkpoint.peft_format import adapter_head_shape, is_adapter_dir
    from llmos.model_names import resolve_model

    if is_adapter_dir(model):
        return bool(adapter_head_shape(model)[0])
    resolved = resolve_model(model)
    return not resolved.is_gguf and read_config(resolved.path)[1] == "SequenceClassifier"


class SentimentPipeline(Pipeline):
    """`pipe("What a lovely day")` -> [{"label": "positive", "score": 0.93}]; `top_k=None` gives every
    label, most likely first (a list per text)."""

    task = "sentiment-analysis"
    summary = "label a text negative/positive: a fine-tuned classifier, or zero-shot by scoring the label words"
    output = '[{"label": str, "score": float}]'
    template = ("Is the sentiment of this text {{ labels[:-1] | join(', ') }} or {{ labels[-1] }}? "
                "Answer with one word.\nText: {{ text }}")
    defaults = {}
    options = {"labels": None, "top_k": 1}
    shape = "listed"

    @classmethod
    def load(cls, model: str | Path, tokenizer: Any = None) -> tuple[Any, Any]:
        if is_classifier_checkpoint(model):
            from llmos.evaluation.loading import load_classifier, load_tokenizer

            return load_classifier(model), tokenizer or load_tokenizer(model)
        return load_causal_lm(model, tokenizer)

    @property
    def zero_shot(self) -> bool:
        return not hasattr(self.model, "classifier")

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        labels, top_k = options["labels"], options["top_k"]
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise PipelineError(f"sentiment-analysis: top_k={top_k!r} must be an integer >= 1 or None (all labels)",
                                param="options.top_k")
        if labels is None:
            return options
        labels = [s.strip() for s in labels.split(",")] if isinstance(labels, str) else list(labels)
        if len(labels) < 2 or not all(isinstance(s, str) and s for s in labels):
            raise PipelineError(f"sentiment-analysis: labels={options['labels']!r}: give two or more label words",
                                param="options.labels")
        return {**options, "labels": labels}

    def variables(self, item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        return {**options, **item, "labels": options["labels"] or ZERO_SHOT_LABELS}

    def run_batch(self, items: list[dict[str, Any]], options: dict[str, Any],
                  generation: dict[str, Any]) -> list[Any]:
        if not self.zero_shot:
            if options["labels"] is not None:
                raise PipelineError("sentiment-analysis: labels= is for zero-shot; a fine-tuned classifier predicts "
                                    f"its own labels, {', '.join(model_label_names(self.model.config))}",
                                    param="options.labels")
            probabilities = class_probabilities(self.model, self.tokenizer, [item["text"] for item in items],
                                                batch_size=len(items))
            return ranked_labels(model_label_names(self.model.config), probabilities, options["top_k"])
        from llmos.evaluation.zero_shot import label_word_log_probs

        labels = options["labels"] or ZERO_SHOT_LABELS
        prompts = [self.tokenizer.apply_chat_template(self.messages(item, options), add_generation_prompt=True)
                   for item in items]
        scores = label_word_log_probs(self.model, self.tokenizer, prompts, labels, len(prompts))
        return ranked_labels(labels, scores.softmax(-1), options["top_k"])
