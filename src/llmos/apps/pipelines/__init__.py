"""Layer 8: task pipelines: `llmos.pipeline(task, model=...)`, named as transformers names them.

    from llmos import pipeline
    summarize = pipeline("summarization", model="smollm2")
    summarize(text, max_words=30)   # [{"summary_text": "..."}]

| task | input | result |
|---|---|---|
| `chat` | a message, or a list of {role, content} | [{"generated_text": conversation + reply}] |
| `text-generation` | a prompt, continued as it is | [{"generated_text": prompt + continuation}] |
| `writing` | a text; mode continue/rewrite/shorten/expand, style | [{"generated_text": str}] |
| `translation` (`translation_en_to_fr`) | a text; src_lang, tgt_lang | [{"translation_text": str}] |
| `summarization` | a text; max_words | [{"summary_text": str}] |
| `extraction` | a text; fields or schema | a dict valid against the schema |
| `sentiment-analysis` | a text; labels (zero-shot) | [{"label": str, "score": float}] |
| `question-answering` | question, context | {"answer", "score", "start", "end"} |
| `quiz` | a text; num_questions | [{"question", "answer", "distractors"}, ...] |

Each task is a module of this package (see `base` for what a task sets);
`describe(task)` prints its templates, decoding defaults and options. A list
of inputs runs in batches of `batch_size` (default 8): measured on SmolLM2-135M
(its GGUF, int4) on 2 CPU cores, 32 summaries of 20 words at a time when the
machine was quiet: 1.48 items/s one at a time, 2.66 in batches of 4, 2.97 of 8
(2.0x), 3.27 of 16. Past 8 the gain is small, while a batch waits for its
longest reply and pads to its longest prompt.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from llmos.apps.pipelines.base import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, Pipeline, PipelineError

TASKS = {  # task name -> "module:class" in this package, imported when used
    "chat": "text:ChatPipeline",
    "text-generation": "text:TextGenerationPipeline",
    "writing": "text:WritingPipeline",
    "translation": "translation:TranslationPipeline",
    "summarization": "summarization:SummarizationPipeline",
    "extraction": "extraction:ExtractionPipeline",
    "sentiment-analysis": "sentiment:SentimentPipeline",
    "question-answering": "question_answering:QuestionAnsweringPipeline",
    "quiz": "quiz:QuizPipeline",
}
ALIASES = {"text-classification": "sentiment-analysis", "sentiment": "sentiment-analysis",
           "summarize": "summarization", "translate": "translation", "qa": "question-answering",
           "extract": "extraction"}
_TRANSLATION = re.compile(r"translation_([a-z]+)_to_([a-z]+)")

__all__ = ["pipeline", "task_class", "describe", "TASKS", "Pipeline", "PipelineError", "DEFAULT_BATCH_SIZE"]


def task_class(task: str) -> tuple[type[Pipeline], dict[str, Any]]:
    """The pipeline class of `task` and the options its name implies (`translation_en_to_fr`)."""
    name = ALIASES.get(task, task)
    options: dict[str, Any] = {}
    match = _TRANSLATION.fullmatch(name)
    if match:
        name, options = "translation", {"src_lang": match.group(1), "tgt_lang": match.group(2)}
    if name not in TASKS:
        raise PipelineError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)} (and translation_XX_to_YY)",
                            param="task")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(f"llmos.apps.pipelines.{module}"), cls), options


def pipeline(task: str, model: Any = DEFAULT_MODEL, tokenizer: Any = None, **settings: Any) -> Pipeline:
    """A ready pipeline for `task` (see the table in the module docstring).

    model: a name (`smollm2`, the default; a store name such as `ollama:llama3.2:1b`), a GGUF file
    or a checkpoint directory, a loaded model (then give its tokenizer), or a `Generator` (the
    server's engine, a server over HTTP). settings: the task's options (`tgt_lang`, `max_words`, ...),
    `template=`/`system=` to replace its prompts, `batch_size=`, and `generate`'s keywords
    (`max_new_tokens`, `do_sample`, ...) to change its decoding defaults."""
    from llmos.generation.service import Generator

    cls, implied = task_class(task)
    if isinstance(model, (str, Path)):
        model, tokenizer = cls.load(model, tokenizer)
    elif tokenizer is None and not isinstance(model, Generator):
        raise PipelineError(f"pipeline({task!r}, model=<a loaded model>) needs its tokenizer=; or give the model's "
                            "name or path, or a Generator", param="tokenizer")
    return cls(model, tokenizer, **{**implied, **settings})


def describe(task: str) -> str:
    """The task's templates, decoding defaults, options and output shape (`llmos run TASK --show-template`)."""
    return task_class(task)[0].describe()
