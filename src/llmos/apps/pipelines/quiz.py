"""Layer 8: the `quiz` task (education): a text -> multiple-choice questions about it, as JSON.

The reply is decoded under a JSON schema built for the text: exactly
`num_questions` items, each a question, an `answer` that must be one of the
text's short spans (`spans.text_spans`, an enum in the schema), and
`num_distractors` wrong answers. So every quiz parses, and every answer is
in the text; whether a question is a good one is the model's doing. The
template shows one example question: without it SmolLM2-135M copies a sentence
of the text as the "question"; with it, it asks (and sometimes copies the
example's wrong answers).
"""

from __future__ import annotations

from typing import Any

from llmos.apps.pipelines.base import Pipeline, PipelineError, Reply
from llmos.apps.pipelines.extraction import parse_json
from llmos.apps.pipelines.spans import MAX_SPANS, text_spans


def quiz_schema(text: str, num_questions: int, num_distractors: int, max_answer_words: int) -> dict[str, Any]:
    spans = text_spans(text, max_answer_words)[:MAX_SPANS]
    if not spans:
        raise PipelineError("quiz: the text has no words to ask about", param="input.text")
    question = {"type": "object", "additionalProperties": False, "required": ["question", "answer", "distractors"],
                "properties": {
                    "question": {"type": "string", "minLength": 5, "maxLength": 150},
                    "answer": {"enum": spans},
                    "distractors": {"type": "array", "minItems": num_distractors, "maxItems": num_distractors,
                                    "items": {"type": "string", "minLength": 1, "maxLength": 40}}}}
    return {"type": "array", "minItems": num_questions, "maxItems": num_questions, "items": question}


class QuizPipeline(Pipeline):
    """`pipe(text, num_questions=3)` -> [{"question": str, "answer": str (a span of the text),
    "distractors": [str, ...]}, ...]."""

    task = "quiz"
    summary = "questions about a text, each with its answer (from the text) and wrong options, as JSON"
    output = '[{"question": str, "answer": str, "distractors": [str, ...]}, ...]'
    system = "You are a teacher who writes multiple-choice quiz questions about a text. Reply with JSON only."
    template = ("Write {{ num_questions }} quiz questions about the text below. Each question asks about one "
                "fact; its answer is a few words copied from the text; the {{ num_distractors }} wrong answers are "
                "of the same kind (other names, numbers or places).\n\n"
                'Example for the text "The Nile is 6,650 kilometres long and flows through Egypt.":\n'
                '[{"question": "How long is the Nile?", "answer": "6,650 kilometres", '
                '"distractors": ["3,200 kilometres", "9,100 kilometres", "500 kilometres"]}]\n\n'
                "Text: {{ text }}")
    defaults = {"max_new_tokens": 400, "do_sample": False}
    options = {"num_questions": 3, "num_distractors": 3, "max_answer_words": 4}

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        for name, low in (("num_questions", 1), ("num_distractors", 1), ("max_answer_words", 1)):
            value = options[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise PipelineError(f"quiz: {name}={value!r} must be an integer >= {low}", param=f"options.{name}")
        return options

    def constraint(self, item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        return {"json_schema": quiz_schema(item["text"], options["num_questions"], options["num_distractors"],
                                           options["max_answer_words"])}

    def parse(self, reply: Reply, item: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        return parse_json(reply, self.task)

    def row(self, result: Any) -> dict[str, Any]:
        return {"quiz": result}
