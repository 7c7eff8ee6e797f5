"""Layer 8: the `summarization` task: a text -> a shorter one, with a length asked for in words.

Length is controlled twice: the prompt asks for at most `max_words` words (the
model mostly keeps to it), and decoding stops at `max_new_tokens` (the hard
limit; by default about two tokens per word asked, plus room to end the sentence).
"""

from __future__ import annotations

from typing import Any

from llmos.apps.pipelines.base import Pipeline, PipelineError, Reply


class SummarizationPipeline(Pipeline):
    """`pipe(text, max_words=40)` -> [{"summary_text": str}]. Unless max_new_tokens is given, decoding
    stops after 2 * max_words + 16 tokens."""

    task = "summarization"
    summary = "summarize a text in at most max_words words"
    output = '[{"summary_text": str}]'
    template = ("Summarize the following text in one or two sentences of at most {{ max_words }} words.\n\n"
                "{{ text }}")
    defaults = {"do_sample": False}
    options = {"max_words": 40}
    shape = "listed"

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        words = options["max_words"]
        if not isinstance(words, int) or isinstance(words, bool) or words < 1:
            raise PipelineError(f"summarization: max_words={words!r} must be an integer >= 1",
                                param="options.max_words")
        return options

    def decoding(self, options: dict[str, Any], generation: dict[str, Any]) -> dict[str, Any]:
        return {"max_new_tokens": 2 * options["max_words"] + 16, **generation}

    def parse(self, reply: Reply, item: dict[str, Any], options: dict[str, Any]) -> dict[str, str]:
        return {"summary_text": reply.text.strip()}
