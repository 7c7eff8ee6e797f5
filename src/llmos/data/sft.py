"""Layer 6 (data): fine-tuning examples and the batches drawn from them.

Two causal formats, each a JSONL file validated line by line (errors name the
file and line):

- chat: `{"messages": [{"role": ..., "content": ...}, ...]}` rendered with the
  model's chat template; the loss is on the assistant turns only (their text
  and the template's end-of-turn tokens). A record may list `"tools"`
  (OpenAI function descriptions) and hold tool calls and results in OpenAI's
  shape (an assistant turn's `tool_calls`, a `tool` turn): they are rendered
  as the server and the agent render them (`generation.tool_calls`), so a
  model is trained on exactly what it is later shown. Which characters those are is found
  by rendering the conversation up to each assistant turn with and without it,
  so any template that renders a conversation as a prefix of its continuation
  works, with no per-template knowledge. A record with `"distill": true` is
  learnt as the base model's distribution over its assistant turns, not as
  their tokens (an adapter keeping the base model's chat: see
  `training.objectives.DistilledCausalLMObjective`).
- prompt/completion: `{"prompt": ..., "completion": ...}`; the loss is on the
  completion and the end-of-sequence token.

An `Example` is token ids plus labels (the id where it is trained, -100
elsewhere). `SFTBatches` shuffles them each epoch and yields (x, y) batches as
the causal objective takes them ((x, y, distill) where some rows distill),
either padded to the longest row or packed (examples concatenated and cut
into rows of exactly `context` tokens, so no compute goes to padding). Its
position is checkpointed, so a resumed run sees the same batches as one never
stopped. Labelled text for classification is read by `data.labelled`;
`ClassificationBatches` batches it the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmos.data.jsonl import DataError, jsonl_records
from llmos.generation.tool_calls import renders_tools, template_messages
from llmos.model.heads import IGNORE_INDEX

logger = logging.getLogger("llmos.data")

ROLES = ("system", "user", "assistant", "tool")
FORMATS = ("chat", "completion")


@dataclass
class Example:
    ids: list[int]
    labels: list[int]  # the id where the loss is taken, IGNORE_INDEX elsewhere
    distill: bool = False  # learn the base model's distribution at those ids, not the ids themselves


def detect_format(path: str | Path) -> str:
    """'chat', 'completion' or 'classification', from the first record of the file."""
    path = Path(path)
    if path.suffix in (".tsv", ".csv"):
        return "classification"
    for line_no, record in _records(path):
        if "messages" in record:
            return "chat"
        if "prompt" in record and "completion" in record:
            return "completion"
        if "label" in record:
            return "classification"
        raise DataError(f"{path}:{line_no}: cannot tell the format from keys {sorted(record)}; expected "
                        "'messages' (chat), 'prompt' + 'completion', or 'text' + 'label' (classification)")
    raise DataError(f"{path} holds no examples")


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for line_no, record in jsonl_records(path):
        if not isinstance(record, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object, found {type(record).__name__}")
        yield line_no, record


def read_examples(path: str | Path, tokenizer: Any, context: int, fmt: str | None = None) -> list[Example]:
    """The examples of a chat or prompt/completion JSONL file, each at most context + 1 tokens
    (one more than a training row: inputs and targets are the same ids shifted by one)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise DataError(f"{path} holds {fmt} data; causal fine-tuning reads {list(FORMATS)}")
    make = _chat_example if fmt == "chat" else _completion_example
    examples, truncated = [], 0
    for line_no, record in _records(path):
        example = make(record, tokenizer, f"{path}:{line_no}")
        if len(example.ids) > context + 1:
            truncated += 1
            example = replace(example, ids=example.ids[:context + 1], labels=example.labels[:context + 1])
        if all(label == IGNORE_INDEX for label in example.labels[1:]):
            raise DataError(f"{path}:{line_no}: nothing to learn within context={context} tokens "
                            "(the trained part starts after the cut); raise --context")
        examples.append(example)
    if not examples:
        raise DataError(f"{path} holds no examples")
    if truncated:
        logger.warning("%s: %d of %d examples were longer than context=%d tokens and were cut",
                       path, truncated, len(examples), context)
    return examples


def _text_field(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise DataError(f"{where}: {key!r} must be a non-empty string, found {value!r}")
    return value


def _completion_example(record: dict[str, Any], tokenizer: Any, where: str) -> Example:
    prompt = tokenizer.encode(_text_field(record, "prompt", where))
    completion = tokenizer.encode(_text_field(record, "completion", where), add_special_tokens=False)
    eos = tokenizer.eos_token_id
    completion = completion + ([eos] if eos is not None else [])
    return Example(prompt + completion, [IGNORE_INDEX] * len(prompt) + completion)


def check_messages(record: dict[str, Any], where: str) -> list[dict[str, str]]:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{'role', 'content'}} objects")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise DataError(f"{where}: message {i} must be an object with a string 'content', found {message!r}")
        if message.get("role") not in ROLES:
            raise DataError(f"{where}: message {i} has role {message.get('role')!r}; expected one of {list(ROLES)}")
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: the conversation has no assistant turn, so nothing to learn")
    return messages


def assistant_spans(messages: list[dict[str, Any]], tokenizer: Any, where: str,
                    tools: list[dict[str, Any]] | None = None) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation (with `tools=` for a template that lists them) and the character
    spans of its assistant turns."""
    from llmos.tokenizer.chat_template import ChatTemplateError

    def render(upto: int, prompt: bool) -> str:
        try:
            return tokenizer.apply_chat_template(messages[:upto], tokenize=False, add_generation_prompt=prompt,
                                                 tools=tools)
        except ChatTemplateError as exc:
            raise DataError(f"{where}: {exc}") from None

    text = render(len(messages), False)
    spans, cursor = [], 0
    for i, message in enumerate(messages):
        if message["content"] and text.find(message["content"], cursor) < 0:
            raise DataError(f"{where}: the model's chat template does not render role {message['role']!r} "
                            f"(message {i}'s text is missing from the rendered conversation)")
        if message["role"] != "assistant":
            continue
        before, after = render(i, True), render(i + 1, False)
        if not (after.startswith(before) and text.startswith(after)):
            raise DataError(f"{where}: the chat template does not render this conversation as a prefix of "
                            "its continuation, so the assistant turns cannot be located")
        spans.append((len(before), len(after)))
        cursor = len(after)
    return text, spans


def _chat_example(record: dict[str, Any], tokenizer: Any, where: str) -> Example:
    messages = check_messages(record, where)
    distill = record.get("distill", False)
    if not isinstance(distill, bool):
        raise DataError(f"{where}: 'distill' must be true or false, found {distill!r}")
    tools = record.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) and "name" in t for t in tools)):
        raise DataError(f"{where}: 'tools' must be a list of function descriptions ({{'name', 'description', "
                        "'parameters'}})")
    messages, listed = template_messages(messages, tools, renders_tools(tokenizer.chat_template))
    text, spans = assistant_spans(messages, tokenizer, where, listed)
    encoding = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
    ids = list(encoding.ids)
    labels = [token if any(start <= begin < end for start, end in spans) else IGNORE_INDEX
              for token, (begin, _) in zip(ids, encoding.offsets, strict=True)]
    return Example(ids, labels, distill)


def pad_id_of(tokenizer: Any) -> int:
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0


class EpochBatches:
    """Endless batches over `rows`, reshuffled each epoch (seed, epoch) and with a checkpointable
    position; subclasses say what one epoch's rows are and how a batch of them is collated."""

    def __init__(self, batch_size: int, seed: int) -> None:
        self.batch_size, self.seed = batch_size, seed
        self.epoch, self.position = 0, 0
        self._rows = self.epoch_rows()

    def shuffled(self, items: list) -> list:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(items))
        return [items[i] for i in order]

    def epoch_rows(self) -> list:
        raise NotImplementedError

    def collate(self, rows: list) -> Any:
        raise NotImplementedError

    def __iter__(self) -> EpochBatches:
        return self

    def __next__(self) -> Any:
        rows = []
        while len(rows) < self.batch_size:
            if self.position >= len(self._rows):
                self.epoch, self.position = self.epoch + 1, 0
                self._rows = self.epoch_rows()
            rows.append(self._rows[self.position])
            self.position += 1
        return self.collate(rows)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]
        self._rows = self.epoch_rows()


GROUP_BATCHES = 16  # group_by_length: examples of this many batches are sorted by length together


class SFTBatches(EpochBatches):
    """(x, y) batches of causal fine-tuning examples: padded to the longest row, or packed.

    With `group_by_length` (as in transformers' Trainer) each run of GROUP_BATCHES batches of the
    shuffled examples is sorted by length before it is cut into batches, and the batches are
    shuffled again: a batch holds examples of similar length, so little of it is padding (the
    teach-tools conversations, 45-800 tokens: 37% of a random batch is padding, 5% of a grouped one).
    50 batches (transformers' size) would make it 2%, but other batches: the shipped tool-use adapter
    is what its recipe trains with these, and its figures moved as much with the batch order alone."""

    def __init__(self, examples: list[Example], batch_size: int, context: int, pad_id: int,
                 packing: bool = False, seed: int = 0, group_by_length: bool = False) -> None:
        if not examples:
            raise DataError("no training examples")
        self.examples, self.context, self.pad_id, self.packing = examples, context, pad_id, packing
        self.group_by_length = group_by_length and not packing
        self.distills = any(e.distill for e in examples)
        if self.distills and packing:
            raise DataError("records with 'distill' cannot be packed with others; turn packing off")
        super().__init__(batch_size, seed)

    def epoch_rows(self) -> list[Example]:
        examples = self.shuffled(self.examples)
        if self.group_by_length:
            group = self.batch_size * GROUP_BATCHES
            ordered = [e for start in range(0, len(examples), group)
                       for e in sorted(examples[start:start + group], key=lambda e: len(e.ids), reverse=True)]
            full = len(ordered) - len(ordered) % self.batch_size  # a short batch stays last, so they align
            batches = [ordered[i:i + self.batch_size] for i in range(0, full, self.batch_size)]
            return [e for batch in self.shuffled(batches) for e in batch] + ordered[full:]
        if not self.packing:
            return examples
        ids = [t for e in examples for t in e.ids]
        labels = [t for e in examples for t in e.labels]
        width = self.context + 1
        rows = [Example(ids[i:i + width], labels[i:i + width]) for i in range(0, len(ids), self.context)]
        return [r for r in rows if len(r.ids) == width] or rows[:1]

    def collate(self, rows: list[Example]) -> tuple[torch.Tensor, ...]:
        x, y = collate(rows, self.pad_id)
        return (x, y, torch.tensor([r.distill for r in rows])) if self.distills else (x, y)


def collate(rows: list[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (x, y): x = ids[:-1], y = labels[1:]. In a causal model a real token
    never attends to the padding after it, so no attention mask is needed."""
    width = max(len(r.ids) for r in rows) - 1
    x = torch.full((len(rows), width), pad_id, dtype=torch.long)
    y = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.ids) - 1
        x[i, :n] = torch.tensor(r.ids[:-1])
        y[i, :n] = torch.tensor(r.labels[1:])
    return x, y


def eval_batches_of(examples: list[Example], batch_size: int, pad_id: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [collate(examples[i:i + batch_size], pad_id) for i in range(0, len(examples), batch_size)]


class ClassificationBatches(EpochBatches):
    """{input_ids, attention_mask, labels} batches over labelled texts (token ids)."""

    def __init__(self, ids: list[list[int]], labels: list[int], batch_size: int, pad_id: int, seed: int = 0) -> None:
        if not ids:
            raise DataError("no training examples")
        self.pairs, self.pad_id = list(zip(ids, labels, strict=True)), pad_id
        super().__init__(batch_size, seed)

    def epoch_rows(self) -> list[tuple[list[int], int]]:
        return self.shuffled(self.pairs)

    def collate(self, rows: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        return classification_batch([ids for ids, _ in rows], [label for _, label in rows], self.pad_id)


def right_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (len(rows), longest), padded on the right."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = 1
    return input_ids, mask


def classification_batch(ids: list[list[int]], labels: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    input_ids, mask = right_pad(ids, pad_id)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": torch.tensor(labels, dtype=torch.long)}
