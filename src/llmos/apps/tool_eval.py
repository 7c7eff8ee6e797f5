"""Layer 8: how well a model uses tools: its decisions, its arguments, its answers from results.

Items come from `llmos.data.tool_conversations.ToolData.test_items` (or any
list of that shape). Each is put to the model exactly as the server puts a
request with `tools` (`generation.tool_calls`: the same rendering and the same
grammar, greedy) under tool_choice "auto" (or "required"), in left-padded
batches, and scored:

- decision: a `call` item is right when the reply calls the expected tool, a
  `none` item when the reply is text (no tool fits the request);
- exact arguments (`call` items): the call's arguments equal the expected ones:
  the same keys, numbers equal as numbers, strings equal once case, surrounding
  spaces and end punctuation are set aside;
- answer (`answer` items, after a call and its result): the reply is text that
  states every fact the result gave (each `key` string appears in it, case
  set aside).

`tool_report` sums them up per split ("new phrasings", "new tools") and prints
the table `llmos teach-tools` shows before and after training.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from llmos.generation.local import as_generator
from llmos.generation.service import GenerationParams
from llmos.generation.tool_calls import read_reply

SPLITS = ("new phrasings", "new tools")


def same_value(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        return float(expected) == float(got)
    if isinstance(expected, str) and isinstance(got, str):
        def norm(text: str) -> str:
            return " ".join(text.casefold().split()).strip(" .,;:!?'\"")
        return norm(expected) == norm(got)
    return expected == got


def same_arguments(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    """The call's arguments are the expected ones (see the module docstring for what counts)."""
    return set(expected) == set(got) and all(same_value(expected[k], got[k]) for k in expected)


def score(item: dict[str, Any], reply: str) -> dict[str, Any]:
    """{"decision": bool, "arguments": bool | None, "answer": bool | None, "called": name | None}."""
    content, calls = read_reply(reply)
    called = calls[0]["function"]["name"] if calls else None
    result: dict[str, Any] = {"called": called, "decision": None, "arguments": None, "answer": None}
    if item["kind"] == "call":
        result["decision"] = called == item["expected"]["name"]
        try:
            arguments = json.loads(calls[0]["function"]["arguments"]) if result["decision"] else None
        except json.JSONDecodeError:  # a call cut by the token limit
            arguments = None
        result["arguments"] = isinstance(arguments, dict) and same_arguments(item["expected"]["arguments"], arguments)
    elif item["kind"] == "none":
        result["decision"] = called is None
    else:
        text = (content or "").casefold()
        result["answer"] = called is None and all(str(key).casefold() in text for key in item["key"])
    return result


def replies(model: Any, tokenizer: Any, items: list[dict[str, Any]], tool_choice: str = "auto",
            batch_size: int = 8, max_new_tokens: int = 96,
            progress: Callable[[int, int], None] | None = None) -> list[str]:
    """The model's greedy reply to each item under `tool_choice` ("auto" or "required"), prompted
    and constrained as the server does it. `model` may be a `Generator` (then no tokenizer)."""
    generator = as_generator(model, tokenizer)
    out: list[str] = []
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        params = [GenerationParams(max_new_tokens=max_new_tokens, tools=tuple(item["tools"]), tool_choice=tool_choice)
                  for item in batch]
        out += [c.text for c in generator.generate([item["messages"] for item in batch], params)]
        if progress is not None:
            progress(len(out), len(items))
    return out


def evaluate_tool_use(model: Any, tokenizer: Any, items: list[dict[str, Any]], tool_choice: str = "auto",
                      batch_size: int = 8, progress: Callable[[int, int], None] | None = None
                      ) -> list[dict[str, Any]]:
    """Each item's score (see `score`) with the reply, under `tool_choice`."""
    texts = replies(model, tokenizer, items, tool_choice, batch_size, progress=progress)
    return [{**score(item, text), "reply": text} for item, text in zip(items, texts, strict=True)]


def summarise(items: list[dict[str, Any]], scores: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per split: decision accuracy (call and none items), exact arguments (of the call items: the
    calls that should happen), answers right (answer items); NaN where a split has no such item."""
    def rate(values: list[bool]) -> float:
        return sum(values) / len(values) if values else float("nan")

    table = {}
    for split in SPLITS:
        rows = [(item, s) for item, s in zip(items, scores, strict=True) if item["split"] == split]
        if not rows:
            continue
        table[split] = {
            "decision": rate([s["decision"] for item, s in rows if item["kind"] in ("call", "none")]),
            "arguments": rate([s["arguments"] for item, s in rows if item["kind"] == "call"]),
            "answer": rate([s["answer"] for item, s in rows if item["kind"] == "answer"]),
            "items": len(rows)}
    return table


def tool_report(before: dict[str, dict[str, float]] | None, after: dict[str, dict[str, float]]) -> list[str]:
    """The before / after table as lines of text."""
    lines = [f"{'held out':15}{'items':>6}  {'decision (auto)':>17}  {'exact arguments':>17}  {'answer from result':>19}"]
    for split, row in after.items():
        old = (before or {}).get(split)
        cells = [f"{row[name]:.0%}" if old is None else f"{old[name]:.0%} -> {row[name]:.0%}"
                 for name in ("decision", "arguments", "answer")]
        lines.append(f"{split:15}{row['items']:>6}  {cells[0]:>17}  {cells[1]:>17}  {cells[2]:>19}")
    return lines
