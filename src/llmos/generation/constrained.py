"""Layer 5: constrained decoding: each generated row matches a JSON schema, a regex, a Lark
grammar or one of a list of choices, through the `llguidance` grammar engine.

At each step the engine says which tokens may come next for each row; every
other token's score becomes -inf before any sampling warper runs, so greedy
decoding and sampling both stay inside the language, and once the grammar is
complete only end-of-sequence is allowed. A constraint the engine cannot
compile is an error, never unconstrained text (fail closed).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import torch

from llmos.generation.config import GenerationError

CONSTRAINT_KEYS = ("json_schema", "regex", "grammar", "choices")
# JSON as json.dumps writes it: no free whitespace, so a small model cannot wander in blanks
JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class ConstraintError(GenerationError):
    """A constraint is malformed or not supported by the grammar engine."""


def grammar_for(json_schema: Any = None, regex: str | None = None, grammar: str | None = None,
                choices: list[str] | None = None) -> str | None:
    """The engine's grammar for the one constraint given (None when there is none)."""
    from llguidance import LLMatcher

    given = {k: v for k, v in (("json_schema", json_schema), ("regex", regex), ("grammar", grammar),
                               ("choices", choices)) if v is not None}
    if not given:
        return None
    if len(given) > 1:
        raise ConstraintError(f"give one constraint, not {sorted(given)}")
    try:
        if json_schema is not None:
            schema = json_schema if isinstance(json_schema, str) else json.dumps(json_schema)
            return LLMatcher.grammar_from_json_schema(schema, defaults=JSON_STYLE)
        if regex is not None:
            return LLMatcher.grammar_from_regex(regex)
        if choices is not None:
            if not choices or not all(isinstance(c, str) and c for c in choices):
                raise ConstraintError(f"choices={choices!r} must be a non-empty list of non-empty strings")
            return LLMatcher.grammar_from_regex("|".join(f"({re.escape(c)})" for c in choices))
        return LLMatcher.grammar_from_lark(grammar)
    except ConstraintError:
        raise
    except Exception as exc:  # the engine's own message names what it cannot compile
        raise ConstraintError(f"the grammar engine cannot compile {sorted(given)[0]}: {exc}") from None


@functools.lru_cache(maxsize=8)
def _engine_tokenizer(tokenizer_json: str, n_vocab: int, eos: int):
    from llguidance import LLTokenizer

    return LLTokenizer(tokenizer_json, n_vocab=n_vocab, eos_token=eos)


def engine_tokenizer(tokenizer: Any, n_vocab: int, eos: int):
    """The engine's view of an `llmos` tokenizer or a `tokenizers.Tokenizer` (built once per tokenizer)."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    return _engine_tokenizer(backend.to_str(), n_vocab, eos)


class GrammarProcessor:
    """A logits processor holding one grammar matcher per row; rows advance as tokens are chosen."""

    def __init__(self, grammar: str, tokenizer: Any, rows: int, prompt_length: int, vocab_size: int,
                 eos_ids: list[int]) -> None:
        from llguidance import LLMatcher

        if not eos_ids:
            raise ConstraintError("constrained decoding needs an end-of-sequence token to end a finished row")
        self.eos = eos_ids[0]
        engine = engine_tokenizer(tokenizer, vocab_size, self.eos)
        self.matchers = [LLMatcher(engine, grammar, log_level=0) for _ in range(rows)]
        if self.matchers[0].is_error():
            error = " ".join(self.matchers[0].get_error().split())
            raise ConstraintError(f"the grammar engine cannot compile the constraint: {error}")
        self.consumed, self.vocab_size = prompt_length, vocab_size
        self.words = (vocab_size + 31) // 32
        self.bits = torch.arange(32, dtype=torch.int32)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[0] != len(self.matchers):
            raise ConstraintError("constrained decoding follows one matcher per row; beam search is not supported")
        new = input_ids[:, self.consumed:].tolist()
        self.consumed = input_ids.shape[1]
        mask = torch.zeros(len(self.matchers), self.words, dtype=torch.int32)
        for row, (matcher, tokens) in enumerate(zip(self.matchers, new, strict=True)):
            for token in tokens:
                if matcher.is_stopped():
                    break
                matcher.consume_token(token)
            if matcher.is_error():
                raise ConstraintError(f"row {row} left the grammar: {matcher.get_error()}")
            if matcher.is_stopped():
                bit = self.eos % 32
                mask[row, self.eos // 32] = (1 << bit) - (1 << 32 if bit == 31 else 0)  # as an int32
            else:
                view = mask[row]
                matcher.unsafe_compute_mask_ptr(view.data_ptr(), view.numel() * view.element_size())
        allowed = ((mask[:, :, None] >> self.bits) & 1).view(len(self.matchers), -1)[:, :scores.shape[-1]]
        return scores.masked_fill(allowed.to(scores.device) == 0, float("-inf"))
