"""Layer 6 (evaluation): greedy generations scored against references (exact match, chrF, ROUGE-L).

A generation file is JSON Lines, one example per line, in any of these shapes:

- ``{"prompt": "...", "reference": "..."}`` (``completion`` is accepted for
  ``reference``; ``references``: a list of acceptable answers);
- ``{"messages": [{"role": ..., "content": ...}, ...]}``: a chat whose last
  assistant turn is the reference and whatever precedes it the prompt (with a
  ``reference``/``references`` field, the whole chat is the prompt).

A chat prompt is rendered with the tokenizer's chat template (generation
prompt added); a tokenizer without one gets the turns' contents joined by
newlines, with a warning. Decoding is greedy and stops at the model's EOS or
after `max_new_tokens`; prompts run in left-padded batches.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmos.data.jsonl import DataError, jsonl_records
from llmos.errors import LLMOSError
from llmos.evaluation.metrics import check_generation_scorers, generation_scores
from llmos.generation.local import LocalGenerator
from llmos.generation.service import GenerationParams

Progress = Callable[[int, int], None]  # (completed, total)
REFERENCE_FIELDS = ("references", "reference", "completion")


@dataclass
class GenerationExample:
    prompt: str | None  # plain text, or None for a chat
    messages: list[dict[str, Any]] | None
    references: list[str]
    line: int


def _references(obj: dict, path: Path, line: int) -> list[str] | None:
    key = next((k for k in REFERENCE_FIELDS if k in obj), None)
    if key is None:
        return None
    value = obj[key]
    refs = value if key == "references" else [value]
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        expected = "a non-empty list of strings" if key == "references" else "a string"
        raise DataError(f"{path}:{line}: {key!r} must be {expected}, got {json.dumps(value)[:60]}")
    return refs


def _messages(value: Any, path: Path, line: int) -> list[dict[str, Any]]:
    ok = isinstance(value, list) and value and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value)
    if not ok:
        raise DataError(f"{path}:{line}: 'messages' must be a non-empty list of {{'role': ..., 'content': ...}} "
                        "objects with string values")
    return value


def _example(obj: Any, path: Path, line: int) -> GenerationExample:
    if not isinstance(obj, dict):
        raise DataError(f"{path}:{line}: expected a JSON object, got {type(obj).__name__}")
    refs = _references(obj, path, line)
    if "messages" in obj:
        messages = _messages(obj["messages"], path, line)
        if refs is None:
            last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
            if last is None or last == 0:
                raise DataError(f"{path}:{line}: the chat has no assistant turn after a prompt to use as the "
                                "reference; end it with one, or give a 'reference' field")
            messages, refs = messages[:last], [messages[last]["content"]]
        return GenerationExample(None, messages, refs, line)
    if "prompt" not in obj:
        raise DataError(f"{path}:{line}: the record has neither 'prompt' nor 'messages' (its keys: {sorted(obj)})")
    if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
        raise DataError(f"{path}:{line}: 'prompt' must be a non-empty string, got {json.dumps(obj['prompt'])[:60]}")
    if refs is None:
        raise DataError(f"{path}:{line}: the record has no reference; give one of {list(REFERENCE_FIELDS)} "
                        f"(its keys: {sorted(obj)})")
    return GenerationExample(obj["prompt"], None, refs, line)


def read_generation_examples(path: str | Path) -> list[GenerationExample]:
    """Every example of a generation JSONL file (see the module docstring)."""
    path = Path(path)
    examples = [_example(obj, path, number) for number, obj in jsonl_records(path)]
    if not examples:
        raise DataError(f"{path}: the file holds no examples (expected one JSON object per line with "
                        "'prompt' and 'reference', or 'messages')")
    return examples


def prompt_ids(tokenizer: Any, example: GenerationExample) -> list[int]:
    if example.messages is None:
        return list(tokenizer.encode(example.prompt))
    if tokenizer.chat_template is not None:
        return list(tokenizer.apply_chat_template(example.messages, add_generation_prompt=True, tokenize=True))
    warnings.warn("the tokenizer has no chat template; chat prompts are the turns' contents joined by newlines",
                  UserWarning, stacklevel=2)
    return list(tokenizer.encode("\n".join(m["content"] for m in example.messages)))


@torch.inference_mode()
def generate_answers(model: Any, tokenizer: Any, prompts: list[list[int]], max_new_tokens: int = 64,
                     batch_size: int = 8, progress: Progress | None = None) -> list[str]:
    """Greedy continuations of the tokenized `prompts`, cut at the first stop id (`LocalGenerator`:
    left-padded batches of `batch_size`)."""
    if batch_size < 1 or max_new_tokens < 1:
        raise LLMOSError(f"batch_size={batch_size} and max_new_tokens={max_new_tokens} must be at least 1")
    generator = LocalGenerator(model, tokenizer)
    params = GenerationParams(max_new_tokens=max_new_tokens)
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        answers += [c.text for c in generator.generate(prompts[start:start + batch_size], params)]
        if progress is not None:
            progress(len(answers), len(prompts))
    return answers


def evaluate_generation(model: Any, tokenizer: Any, data: str | Path | list[GenerationExample],
                        max_new_tokens: int = 64, batch_size: int = 8, max_examples: int | None = None,
                        progress: Progress | None = None) -> dict[str, Any]:
    """Generate for every example and score against its references.

    Returns {"n_examples", "metrics": {exact_match, chrf, rouge_l}, "predictions": [{line, prompt,
    prediction, references}]}; chrF is sacrebleu's corpus score (0-100), ROUGE-L the mean F-measure (0-1)."""
    check_generation_scorers()  # before minutes of generating, not after
    source = str(data) if not isinstance(data, list) else "examples"
    examples = read_generation_examples(data) if not isinstance(data, list) else data
    if max_examples is not None:
        if max_examples < 1:
            raise LLMOSError(f"max_examples={max_examples} must be at least 1")
        examples = examples[:max_examples]
    context = model.config.max_seq_len
    prompts = []
    with warnings.catch_warnings():
        warnings.simplefilter("once", UserWarning)  # the missing-template warning, once per file
        for example in examples:
            ids = prompt_ids(tokenizer, example)
            if not ids:
                raise DataError(f"{source}:{example.line}: the prompt encodes to no tokens")
            if len(ids) >= context:
                raise DataError(f"{source}:{example.line}: the prompt has {len(ids)} tokens; the model's context "
                                f"(max_seq_len={context}) leaves no room to generate")
            prompts.append(ids)
    answers = generate_answers(model, tokenizer, prompts, max_new_tokens, batch_size, progress)
    references = [e.references for e in examples]
    return {
        "n_examples": len(examples),
        "metrics": generation_scores(answers, references),
        "predictions": [
            {"line": e.line, "prompt": e.prompt if e.messages is None else e.messages, "prediction": a,
             "references": e.references}
            for e, a in zip(examples, answers, strict=True)
        ],
    }
