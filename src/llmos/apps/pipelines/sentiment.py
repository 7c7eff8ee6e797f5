"""Layer 8: the `sentiment-analysis` task: a text -> its label and the label's probability.

Two ways, chosen by the model given:
- a fine-tuned sequence classifier (a checkpoint or LoRA adapter saved with its
  head, e.g. from `llmos finetune --task classification`) predicts its own labels
  (`evaluation.classification.classify`);
- a causal LM answers zero-shot: asked whether the text is positive or negative
  (or the `labels` you give), with its reply started for it ("The sentiment of
  this text is"), each label's score is the probability that the next word is
  that label (`evaluation.zero_shot`'s label words, scored by the `Generator`'s
  `next_token_log_probs`, so a served model scores through its engine), divided
  by the probability the same prompt gives it for content-free inputs
  (calibration: `calibrate=False` turns it off), normalised over the labels.
  Nothing is decoded, so the answer is always one of the labels. The prior is
  computed once per model, prompt and label set (a few forward passes) and cached.

The default prompt, answer start, label order and calibration were chosen on
SST-2 training sentences (benchmarks/sentiment_prompts.py): on 2,000 held-out
sentences SmolLM2-135M's accuracy went from 65.35% (the old prompt, raw label
words, "positive" for most texts) to 82.10% (`benchmarks/sst2.py --val-split unseen`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.apps.pipelines.base import Pipeline, PipelineError, load_causal_lm
from llmos.evaluation.classification import class_probabilities, model_label_names, ranked_labels

ZERO_SHOT_LABELS = ["positive", "negative"]  # the question names them in this order


def is_classifier_checkpoint(model: str | Path) -> bool:
    """Whether `model` names a saved sequence classifier (directory or LoRA adapter with its head)."""
    from llmos.generation.loading import describe_source

    return describe_source(model).head == "classifier"


class SentimentPipeline(Pipeline):
    """`pipe("What a lovely day")` -> [{"label": "positive", "score": 0.93}]; `top_k=None` gives every
    label, most likely first (a list per text)."""

    task = "sentiment-analysis"
    summary = "label a text negative/positive: a fine-tuned classifier, or zero-shot by scoring label words (calibrated)"
    output = '[{"label": str, "score": float}]'
    template = ("Is the sentiment of this text {{ labels[:-1] | join(', ') }} or {{ labels[-1] }}? "
                "Answer with one word.\nText: {{ text }}")
    defaults = {}
    # answer_start: the reply's first words, written for the model (the label words follow them);
    # calibrate: divide out the label prior of content-free inputs (see the module docstring)
    options = {"labels": None, "top_k": 1, "answer_start": "The sentiment of this text is", "calibrate": True}
    shape = "listed"

    @classmethod
    def load(cls, model: str | Path, tokenizer: Any = None) -> tuple[Any, Any]:
        if is_classifier_checkpoint(model):
            from llmos.evaluation.loading import load_classifier

            loaded = load_classifier(model, with_tokenizer=tokenizer is None)
            return loaded.model, tokenizer or loaded.tokenizer
        return load_causal_lm(model, tokenizer)

    @property
    def zero_shot(self) -> bool:
        return self.generator is not None

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        labels, top_k = options["labels"], options["top_k"]
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise PipelineError(f"sentiment-analysis: top_k={top_k!r} must be an integer >= 1 or None (all labels)",
                                param="options.top_k")
        if not isinstance(options["answer_start"], str):
            raise PipelineError(f"sentiment-analysis: answer_start={options['answer_start']!r} must be text (\"\" for "
                                "none)", param="options.answer_start")
        if not isinstance(options["calibrate"], bool):
            raise PipelineError(f"sentiment-analysis: calibrate={options['calibrate']!r} must be true or false",
                                param="options.calibrate")
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
        from llmos.evaluation.zero_shot import (
            calibrate,
            content_free_prior,
            generator_label_log_probs,
        )

        labels = options["labels"] or ZERO_SHOT_LABELS
        if self.tokenizer is None:
            raise PipelineError("sentiment-analysis scores label words: it needs the model's tokenizer",
                                param="tokenizer")
        start = options["answer_start"]
        scores = generator_label_log_probs(self.generator, self.tokenizer,
                                           [self.prompt_ids(item, options) for item in items], labels, start)
        if options["calibrate"]:
            prior = content_free_prior(self.generator, self.tokenizer, self.content_free_prompts(options), labels,
                                       start, self.batch_size)
            scores = calibrate(scores, prior)
        return ranked_labels(labels, scores.softmax(-1), options["top_k"])

    def prompt_ids(self, item: dict[str, Any], options: dict[str, Any]) -> list[int]:
        """One input's prompt as token ids, up to the reply (whose start is added when scoring): ids,
        not messages, so that the reply can be started for the model."""
        return self.tokenizer.apply_chat_template(self.messages(item, options), add_generation_prompt=True)

    def content_free_prompts(self, options: dict[str, Any]) -> list[list[int]]:
        """The prompts of the content-free inputs whose label distribution calibration divides out."""
        from llmos.evaluation.zero_shot import content_free_texts

        return [self.prompt_ids({"text": text}, options) for text in content_free_texts(self.tokenizer)]
