"""Layer 5: what every caller of a model shares about a reply: left padding, what ends it, its text.

One home for three jobs that the server, the pipelines, the playground and
`llmos chat` each used to do their own way:

- `left_pad`: prompts of different lengths as one (B, T) batch, padded on the
  left as decoder-only generation needs;
- `stop_token_ids`: the token ids that end a reply, in one order: the model's
  own end-of-sequence ids first (its generation_config.json, then its config),
  then the tokenizer's, then the end-of-turn tokens of the common chat formats
  that the vocabulary has (ChatML's `<|im_end|>`, Llama 3's `<|eot_id|>`,
  Phi's `<|end|>`, Gemma's `<end_of_turn>`, ...). The first is the one a
  finished grammar ends a reply with;
- `TextStream` and `cut_reply`: token ids to text, cut at the first stop id or
  stop string (neither is part of the reply, as in OpenAI's API), streamed
  without ever releasing half a UTF-8 character or the start of a stop string.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from llmos.tokenizer.incremental import IncrementalDecoder

# Tokens that end an assistant turn in common chat formats (ChatML, Llama 3, Phi, Gemma).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (len(rows), longest), padded on the left as decoding needs."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return input_ids, mask


def model_eos_ids(model: Any) -> list[int]:
    """The end-of-sequence ids a model ships: its generation config's, then its config's."""
    shipped = getattr(model, "generation_config", None)
    if isinstance(shipped, dict):
        from llmos.generation_config import GenerationConfig

        shipped = GenerationConfig.from_dict(shipped)
    ids = [*(shipped.eos_token_ids if shipped is not None else []), *(model.config.eos_token_ids or [])]
    return list(dict.fromkeys(ids))


def _token_to_id(tokenizer: Any, token: str) -> int | None:
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    return backend.token_to_id(token) if hasattr(backend, "token_to_id") else None


def stop_token_ids(tokenizer: Any, eos_ids: Iterable[int] = ()) -> list[int]:
    """The ids that end a reply, the model's own first (see the module docstring). `tokenizer` is an
    LLMOS `Tokenizer` (or anything with `eos_token_id` and a backend's `token_to_id`); `eos_ids` are
    the model's (`model_eos_ids`)."""
    found = [*eos_ids, getattr(tokenizer, "eos_token_id", None)]
    found += [_token_to_id(tokenizer, token) for token in END_OF_TURN_TOKENS]
    return [int(i) for i in dict.fromkeys(found) if i is not None]


def pad_token_id(tokenizer: Any, stop_ids: list[int]) -> int:
    """The id that fills the left of a shorter prompt: the tokenizer's pad, else its EOS, else the first stop id."""
    for candidate in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if candidate is not None:
            return int(candidate)
    return stop_ids[0] if stop_ids else 0


class TextStream:
    """Token ids in, text deltas out, stop strings honoured.

    `tokenizer` is anything `IncrementalDecoder` takes, or an object with its own
    `incremental_decoder()` (the server's `ServedTokenizer`)."""

    def __init__(self, tokenizer: Any, stop: Iterable[str] = ()) -> None:
        self.stop = [s for s in stop if s]
        own = getattr(tokenizer, "incremental_decoder", None)
        self.decoder = own() if callable(own) else IncrementalDecoder(tokenizer)
        self.full = ""  # the whole characters decoded so far
        self.emitted = 0  # characters of `full` already handed out
        self.stopped = False

    @property
    def text(self) -> str:
        """The answer so far: what was handed out (cut before a stop string once one is seen)."""
        return self.full[: self.emitted]

    def push(self, token_id: int) -> str:
        """Add a token; return the text that is now safe to show (maybe empty)."""
        piece = self.decoder.push(token_id)
        if not piece:  # an incomplete multi-byte character (or a skipped token): nothing new
            return ""
        self.full += piece
        full = self.full
        if self.stop:
            window = max(0, self.emitted - max(len(s) for s in self.stop))
            hits = [i for i in (full.find(s, window) for s in self.stop) if i >= 0]
            if hits:
                self.stopped = True
                return self._emit_until(min(hits))
            return self._emit_until(len(full) - self._held_back(full))
        return self._emit_until(len(full))

    def flush(self) -> str:
        """At the end: whatever was held back (no stop string completed)."""
        if self.stopped:
            return ""
        self.full += self.decoder.flush()
        return self._emit_until(len(self.full))

    def _held_back(self, full: str) -> int:
        """Length of the longest tail of `full` that begins some stop string."""
        longest = 0
        for stop in self.stop:
            for n in range(min(len(stop) - 1, len(full)), longest, -1):
                if full.endswith(stop[:n]):
                    longest = n
                    break
        return longest

    def _emit_until(self, end: int) -> str:
        if end <= self.emitted:
            if self.stopped:
                self.emitted = max(end, 0)
            return ""
        delta = self.full[self.emitted : end]
        self.emitted = end
        return delta


def cut_reply(tokenizer: Any, ids: list[int], stop_ids: Iterable[int], stop: Iterable[str] = ()
              ) -> tuple[str, list[int], str]:
    """(text, the reply's token ids, finish reason) of generated `ids`: cut before the first stop id,
    or after the token that completes a stop string (its text cut before the string): "stop";
    otherwise all of them: "length". The text is what a `TextStream` of the same ids hands out."""
    ends = set(stop_ids)
    stream = TextStream(tokenizer, stop)
    for n, token in enumerate(ids):
        if token in ends:
            stream.flush()
            return stream.text, list(ids[:n]), "stop"
        stream.push(token)
        if stream.stopped:
            return stream.text, list(ids[: n + 1]), "stop"
    stream.flush()
    return stream.text, list(ids), "length"
