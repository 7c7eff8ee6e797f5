"""Layer 8: the `question-answering` task: a question over a given text -> an answer taken from that text.

transformers' question-answering is extractive (a span of the context, with
its offsets); here a causal LM answers, and by default the reply is decoded
under a regex: `Answer: ` and then one of the context's short spans
(`spans.text_spans`), so the answer is always a literal piece of the text with
real `start`/`end` offsets, as an extractive reader's. Why the fixed prefix: a
small instruct model wants to begin with a sentence ("The Eiffel Tower
is..."), and forced to begin with a span it picks the sentence's subject; after
`Answer: ` the span is the next thing it would say (SmolLM2-135M, 8 questions
of our own: 2 right without the prefix, 5 with it; answering freely, 7 replies
hold the answer somewhere in a sentence). `constrain=False` lets it answer
freely; `start` is then -1 when the answer is not found in the text. `score`
is exp(the mean log-probability the model gives the reply's tokens), the
model's own distribution, so it is the same whichever `Generator` decodes.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

from llmos.apps.pipelines.base import Pipeline, PipelineError, Reply
from llmos.apps.pipelines.spans import MAX_SPANS, text_spans


class QuestionAnsweringPipeline(Pipeline):
    """`pipe(question="Who...?", context="...")`, `pipe(context, question=...)` or
    `pipe({"question": ..., "context": ...})` -> {"answer": str, "score": float, "start": int, "end": int}."""

    task = "question-answering"
    summary = "answer a question with a span of the given text (question, context)"
    output = '{"answer": str, "score": float, "start": int, "end": int}'
    fields = ("context", "question")
    system = "You answer questions about a text with a short phrase copied from the text."
    template = "Text: {{ context }}\n\nQuestion: {{ question }}\nAnswer with a few words from the text."
    defaults = {"max_new_tokens": 40, "do_sample": False}
    options = {"constrain": True, "max_answer_words": 4}
    answer_prefix = "Answer: "  # the constrained reply's fixed start (see the module docstring)

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        words = options["max_answer_words"]
        if not isinstance(words, int) or words < 1:
            raise PipelineError(f"question-answering: max_answer_words={words!r} must be an integer >= 1",
                                param="options.max_answer_words")
        return options

    def constraint(self, item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any] | None:
        if not options["constrain"]:
            return None
        spans = text_spans(item["context"], options["max_answer_words"])
        if not spans:
            raise PipelineError("question-answering: the context has no words to answer with", param="input.context")
        if len(spans) > MAX_SPANS:
            warnings.warn(f"question-answering: the context has {len(spans)} candidate answers, more than "
                          f"{MAX_SPANS}; answering freely (constrain=False) instead", stacklevel=2)
            return None
        return {"regex": re.escape(self.answer_prefix) + "(" + "|".join(map(re.escape, spans)) + ")"}

    def wants_log_probs(self) -> bool:
        return True

    def parse(self, reply: Reply, item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        answer = reply.text.strip().removeprefix(self.answer_prefix.strip()).strip()
        start = item["context"].find(answer) if answer else -1
        return {"answer": answer, "score": math.exp(reply.log_prob), "start": start,
                "end": start + len(answer) if start >= 0 else -1}
