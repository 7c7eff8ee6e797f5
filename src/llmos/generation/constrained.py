"""Layer 5: constrained decoding: each generated row matches a JSON schema, a regex, a Lark
grammar or one of a list of choices, through the `llguidance` grammar engine.

At each step the engine says which tokens may come next for each row; every
other token's score becomes -inf before any sampling warper runs, so greedy
decoding, sampling and beam search all stay inside the language, and once the
grammar is complete only end-of-sequence is allowed. A constraint the engine
cannot compile is an error, never unconstrained text (fail closed), and so is
one it gives up on mid-decode: an engine error at any step raises, it never
ends the row as if the text were complete. `check_servable` takes a dry first
step, so a grammar that compiles but cannot start (a schema that is only a
`$ref` to itself, a required property that contains itself) fails before any
decoding.

A JSON string is bounded: one whose schema gives no `maxLength` (nor an enum,
const, pattern or format of its own) gets `DEFAULT_MAX_STRING_LENGTH`
characters (`bound_strings`), so a small model that loops inside a string is
closed by the grammar, with valid JSON, instead of running to the token limit
(or past the context, as a looping tool-call argument did). A schema's own
`maxLength` wins; give a larger one for long text.

Every row has its own matcher (or none: an unconstrained row in a mixed batch),
so rows of one batch may follow different grammars. Beam search forks and
drops beams every step; it calls `follow_rows` so each matcher moves with its
beam (a fork deep-copies the parent's matcher, as the KV cache copies its rows).
"""

from __future__ import annotations

import functools
import json
import re
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from llmos.generation_config import GenerationError
from llmos.tokenizer import Tokenizer
from llmos.tokenizer.from_any import as_tokenizer

CONSTRAINT_KEYS = ("json_schema", "regex", "grammar", "choices")
# JSON as json.dumps writes it: no free whitespace, so a small model cannot wander in blanks
JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


DEFAULT_MAX_STRING_LENGTH = 256  # characters of a JSON string whose schema sets no maxLength
# keys whose values are data, not subschemas: a string schema inside them must not be rewritten
_DATA_KEYS = frozenset({"const", "enum", "default", "examples", "x-guidance"})


def bound_strings(schema: Any, limit: int = DEFAULT_MAX_STRING_LENGTH) -> Any:
    """A copy of a JSON schema in which every string without its own bound has `maxLength` `limit`
    (at least its minLength). Strings with an enum, const, pattern or format keep their own language."""
    if isinstance(schema, list):
        return [bound_strings(item, limit) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: value if key in _DATA_KEYS else bound_strings(value, limit) for key, value in schema.items()}
    kind = schema.get("type")
    is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
    if is_string and not any(key in schema for key in ("maxLength", "enum", "const", "pattern", "format")):
        minimum = schema.get("minLength")
        bounded["maxLength"] = max(limit, minimum) if isinstance(minimum, int) else limit
    return bounded


class ConstraintError(GenerationError):
    """A constraint is malformed or not supported by the grammar engine."""


def _limits():
    """The engine's default limits, with errors of one line: no parser state (which could show the
    grammar) in messages that reach users."""
    from llguidance import LLParserLimits

    return LLParserLimits(verbose_errors=False)


def _engine_error(matcher) -> str:
    """The first line of a matcher's error, in words where the engine's are terse."""
    error = matcher.get_error().splitlines()[0].strip() if matcher.get_error() else matcher.stop_reason()
    if error in ("NoExtension", "NoExtensionBias"):
        return f"no text can satisfy it ({error})"
    return error


def grammar_for(json_schema: Any = None, regex: str | None = None, grammar: str | None = None,
                choices: list[str] | None = None) -> str | None:
    """The engine's grammar for the one constraint given (None when there is none), checked by
    the engine now, so a constraint it cannot compile fails here, before any decoding."""
    from llguidance import LLMatcher

    given = {k: v for k, v in (("json_schema", json_schema), ("regex", regex), ("grammar", grammar),
                               ("choices", choices)) if v is not None}
    if not given:
        return None
    if len(given) > 1:
        raise ConstraintError(f"give one constraint, not {sorted(given)}")
    kind = next(iter(given))
    try:
        if json_schema is not None:
            result = LLMatcher.grammar_from_json_schema(_schema_text(json_schema), defaults=JSON_STYLE)
        elif regex is not None:
            result = LLMatcher.grammar_from_regex(regex)
        elif choices is not None:
            if isinstance(choices, str) or not choices or not all(isinstance(c, str) and c for c in choices):
                raise ConstraintError(f"choices={choices!r} must be a non-empty list of non-empty strings")
            result = LLMatcher.grammar_from_regex("|".join(f"({re.escape(c)})" for c in choices))
        else:
            result = LLMatcher.grammar_from_lark(grammar)
        error = LLMatcher.validate_grammar(result)
    except ConstraintError:
        raise
    except Exception as exc:  # the engine's own message names what it cannot compile
        error = str(exc)
    if error:
        raise ConstraintError(f"the grammar engine cannot compile {kind}: {' '.join(error.split())}")
    return result


def _schema_text(json_schema: Any) -> str:
    """The schema (a dict, or JSON text) with its strings bounded, as JSON text; text that is not a
    JSON object goes to the engine as it is, for the engine to refuse."""
    schema = json_schema
    if isinstance(json_schema, str):
        try:
            schema = json.loads(json_schema)
        except json.JSONDecodeError:
            return json_schema
        if not isinstance(schema, dict):
            return json_schema
    return json.dumps(bound_strings(schema))


def prompt_grammars(given: dict[str, Any], batch: int) -> list[str | None] | None:
    """One grammar (None: unconstrained) per prompt from `generate`'s keywords: one of
    CONSTRAINT_KEYS for every row, or `constraints=[{key: value} or None, ...]`, one per row.
    None when no row is constrained."""
    given = dict(given)
    per_row = given.pop("constraints", None)
    if per_row is None:
        grammar = grammar_for(**given)
        return None if grammar is None else [grammar] * batch
    shared = sorted(k for k, v in given.items() if v is not None)
    if shared:
        raise ConstraintError(f"give constraints=[...] (one per row) or {shared[0]}= (all rows), not both")
    if isinstance(per_row, (str, dict)) or not isinstance(per_row, Sequence) or len(per_row) != batch:
        count = f"{len(per_row)} entries" if isinstance(per_row, Sequence) else f"a {type(per_row).__name__}"
        raise ConstraintError(f"constraints has {count} for {batch} input rows; give a list with one "
                              "constraint dict (or None: unconstrained) per row")
    grammars = [_row_grammar(row, entry) for row, entry in enumerate(per_row)]
    return grammars if any(g is not None for g in grammars) else None


def _row_grammar(row: int, entry: Any) -> str | None:
    if entry is None:
        return None
    if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in CONSTRAINT_KEYS:
        raise ConstraintError(f"constraints[{row}]={entry!r}: give one of {list(CONSTRAINT_KEYS)} as a dict "
                              "with one key, e.g. {'regex': '[0-9]+'}, or None for an unconstrained row")
    if next(iter(entry.values())) is None:
        raise ConstraintError(f"constraints[{row}]={entry!r} has no value; use None for an unconstrained row")
    try:
        return grammar_for(**entry)
    except ConstraintError as exc:
        raise ConstraintError(f"constraints[{row}]: {exc}") from None


def check_servable(grammar: str, tokenizer: Any, vocab_size: int, eos_ids: list[int]) -> None:
    """Compile `grammar` for `tokenizer` and take its first step without a model: the tokens it
    forces, then the mask after them. ConstraintError when the engine cannot: a grammar can
    compile and still admit no text at all (a JSON schema that is only a `$ref` to itself) or
    force text that never ends (a required property whose schema is the whole schema again),
    which would otherwise fail mid-decode."""
    processor = GrammarProcessor(grammar, tokenizer, 1, 0, vocab_size, eos_ids)
    matcher = processor.matchers[0]
    matcher.consume_tokens(matcher.compute_ff_tokens())
    if not matcher.is_error() and not matcher.is_stopped():
        view = processor.mask[0]
        matcher.unsafe_compute_mask_ptr(view.data_ptr(), view.numel() * view.element_size())
    if matcher.is_error():
        raise ConstraintError(f"the grammar engine cannot serve it: {_engine_error(matcher)}")


@functools.lru_cache(maxsize=8)
def _engine_tokenizer(tokenizer_json: str, n_vocab: int, eos: int):
    from llguidance import LLTokenizer

    return LLTokenizer(tokenizer_json, n_vocab=n_vocab, eos_token=eos)


# backend tokenizer -> {(n_vocab, eos): engine tokenizer}: serializing a 49k vocabulary to find the
# cached engine costs ~20 ms, more than a short constrained reply's whole grammar work
_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def engine_tokenizer(tokenizer: Tokenizer, n_vocab: int, eos: int):
    """The engine's view of an LLMOS `Tokenizer` (built once per tokenizer)."""
    backend = tokenizer.backend_tokenizer
    per_backend = _ENGINES.setdefault(backend, {})
    if (n_vocab, eos) not in per_backend:
        per_backend[n_vocab, eos] = _engine_tokenizer(backend.to_str(), n_vocab, eos)
    return per_backend[n_vocab, eos]


class GrammarProcessor:
    """A logits processor holding one grammar matcher per row; rows advance as tokens are chosen.

    `grammar` is one grammar for all `rows`, or a list with one grammar (or None) per row;
    `tokenizer` is any tokenizer `as_tokenizer` takes.
    """

    def __init__(self, grammar: str | Sequence[str | None], tokenizer: Any, rows: int, prompt_length: int,
                 vocab_size: int, eos_ids: list[int]) -> None:
        from llguidance import LLMatcher

        grammars = [grammar] * rows if isinstance(grammar, str) else list(grammar)
        if len(grammars) != rows:
            raise ConstraintError(f"{len(grammars)} grammars for {rows} rows; give one per row")
        if not eos_ids:
            raise ConstraintError("constrained decoding needs an end-of-sequence token to end a finished row")
        self.eos = eos_ids[0]
        engine = engine_tokenizer(as_tokenizer(tokenizer), vocab_size, self.eos)
        compiled = {}
        for text in dict.fromkeys(g for g in grammars if g is not None):  # each distinct grammar once
            compiled[text] = LLMatcher(engine, text, log_level=0, limits=_limits())
            if compiled[text].is_error():
                error = " ".join(compiled[text].get_error().split())
                raise ConstraintError(f"the grammar engine cannot compile the constraint: {error}")
        self.matchers = [None if g is None else compiled[g].deep_copy() for g in grammars]
        self.fed = [True] * rows  # False: a finished or dead row, whose new tokens are not matched
        self.consumed, self.vocab_size = prompt_length, vocab_size
        self.mask = torch.empty(rows, (vocab_size + 31) // 32, dtype=torch.int32)  # one bit per token

    def _compute_mask(self, row: int) -> None:
        """The allowed tokens of `row` into its mask bits; an engine failure raises (fail closed:
        the engine's mask in its error state allows only end-of-sequence, which would end the
        row as if its text were complete)."""
        matcher, view = self.matchers[row], self.mask[row]
        matcher.unsafe_compute_mask_ptr(view.data_ptr(), view.numel() * view.element_size())
        if matcher.is_error():
            raise ConstraintError(f"the grammar engine failed on row {row}: {_engine_error(matcher)}")

    def follow_rows(self, parents: torch.Tensor | None, live: torch.Tensor) -> None:
        """Row i now continues row parents[i] (None: itself); rows not `live` (finished, or beams
        scored -inf that are never returned) are no longer matched. A parent with several
        children is deep-copied, so beams that fork go on separately."""
        if parents is not None:
            taken: set[int] = set()
            matchers = []
            for parent in parents.tolist():
                matcher = self.matchers[parent]
                matchers.append(matcher.deep_copy() if matcher is not None and parent in taken else matcher)
                taken.add(parent)
            self.matchers = matchers
        self.fed = live.tolist()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows = len(self.matchers)
        if input_ids.shape[0] != rows:
            raise ConstraintError(f"the grammar processor follows {rows} rows, got {input_ids.shape[0]}")
        new = input_ids[:, self.consumed:].tolist()
        self.consumed = input_ids.shape[1]
        mask = self.mask.fill_(-1)  # all bits set: every token allowed
        for row, (matcher, tokens) in enumerate(zip(self.matchers, new, strict=True)):
            if matcher is None or not self.fed[row]:
                continue
            for token in tokens:
                if matcher.is_stopped():
                    break
                matcher.consume_token(token)
            if matcher.is_error():
                raise ConstraintError(f"row {row} left the grammar: {_engine_error(matcher)}")
            mask[row] = 0
            if matcher.is_stopped():
                bit = self.eos % 32
                mask[row, self.eos // 32] = (1 << bit) - (1 << 32 if bit == 31 else 0)  # as an int32
            else:
                self._compute_mask(row)
        # bits -> one bool per token; numpy's unpackbits is single-threaded and 2-3x faster than torch shifts
        bits = np.unpackbits(mask.numpy().view(np.uint8), axis=-1, bitorder="little")
        allowed = torch.from_numpy(bits).view(torch.bool)[:, :scores.shape[-1]]
        return torch.where(allowed.to(scores.device), scores, float("-inf"))
