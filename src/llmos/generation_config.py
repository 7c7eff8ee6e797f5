"""Layer 1 (beside `config.py`): `GenerationConfig`: how to decode, with Hugging Face's names and meanings.

Values are validated on construction and on `replace`, so a bad request fails
with one `GenerationError` naming the field and its valid range before any
forward pass runs. It round-trips to `generation_config.json`.

Length default, on purpose different from transformers: when neither
`max_new_tokens` nor `max_length` is given, up to `DEFAULT_MAX_NEW_TOKENS`
(256) new tokens are generated (never past the context window), and a warning
says so if that default, not an end-of-sequence token, ended the text. HF's
silent 20-token `max_length` cut is the trap this avoids.

Chat defaults, one definition for `llmos chat`, `llmos serve` (and its page) and
the studio playground: `chat_sampling(model.generation_config)` is how a reply
is sampled when the user names nothing: the values the model's own
generation_config.json (or GGUF `general.sampling.*`) sets, and for the rest
`CHAT_SAMPLING`, chosen by measurement on the embedded SmolLM2-135M-Instruct
(benchmarks/chat_defaults.py; its GGUF and its Hub generation_config.json set
none). `DEFAULT_REPLY_TOKENS` caps a chat reply when nobody gives a length,
as llama-server and Ollama cap theirs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.config import ConfigError, token_id_list
from llmos.errors import LLMOSError

DEFAULT_MAX_NEW_TOKENS = 256
GENERATION_CONFIG_NAME = "generation_config.json"
# A chat reply's cap when neither the request nor the user sets one: SmolLM2 ends 14 of 16 replies by
# itself within 291 tokens (benchmarks/chat_defaults.py --lengths); a loop would run to the context.
DEFAULT_REPLY_TOKENS = 512
# A chat reply when the model's generation_config names nothing: greedy (temperature 0) with a
# repetition penalty; top_k / top_p are Ollama's, for a user who raises the temperature (0 = off).
# Measured on SmolLM2-135M-Instruct by benchmarks/chat_defaults.py: its first token for "What is the
# capital of France?" is "The" 0.15 against "L" 0.14 and "La" 0.11, and every first token but "The"
# goes on in garbled French, so sampling answers it in French 33-67% of the time (temperature 0.2-0.8);
# greedy alone loops on 4 of 8 open prompts, greedy with the penalty 1.1 on 1 of 8.
CHAT_SAMPLING: dict[str, float | int] = {"temperature": 0.0, "top_k": 40, "top_p": 0.9, "min_p": 0.0,
                                         "repetition_penalty": 1.1}
# What transformers and OpenAI's API do when nothing is set (plain completions keep it): no warper, no penalty.
NEUTRAL_SAMPLING: dict[str, float | int] = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0,
                                            "repetition_penalty": 1.0}


class GenerationError(LLMOSError):
    """A generation parameter or input that decoding cannot use."""


@dataclass
class GenerationConfig:
    # length
    max_length: int | None = None  # prompt + new tokens
    max_new_tokens: int | None = None  # wins over max_length when both are set
    min_new_tokens: int = 0
    # strategy
    do_sample: bool = False
    num_beams: int = 1
    # logits processing
    temperature: float = 1.0
    top_k: int | None = 50  # sampling only, as in transformers; 0/None = off
    top_p: float = 1.0
    min_p: float | None = None
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    # beam search
    length_penalty: float = 1.0
    early_stopping: bool | str = False  # True, False or "never"
    num_return_sequences: int = 1
    # special tokens and stopping
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    stop_strings: str | list[str] | None = None
    seed: int | None = None
    # outputs
    return_dict_in_generate: bool = False
    output_scores: bool = False
    output_logits: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys of a loaded file, kept

    def __post_init__(self) -> None:
        self.validate()

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        def bad(name: str, valid: str) -> GenerationError:
            return GenerationError(f"{name}={getattr(self, name)!r} is invalid; valid: {valid}")

        if self.max_new_tokens is not None and (not _is_int(self.max_new_tokens) or self.max_new_tokens <= 0):
            raise bad("max_new_tokens", "an integer >= 1")
        if self.max_length is not None and (not _is_int(self.max_length) or self.max_length <= 0):
            raise bad("max_length", "an integer >= 1")
        if not _is_int(self.min_new_tokens) or self.min_new_tokens < 0:
            raise bad("min_new_tokens", "an integer >= 0")
        if not isinstance(self.temperature, (int, float)) or not self.temperature > 0:
            raise bad("temperature", "a number > 0 (use do_sample=False for greedy decoding)")
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 0):
            raise bad("top_k", "an integer >= 0 (0 or None turns it off)")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise bad("top_p", "a number in (0, 1]")
        if self.min_p is not None and (not isinstance(self.min_p, (int, float)) or not 0 <= self.min_p <= 1):
            raise bad("min_p", "a number in [0, 1] or None")
        if not isinstance(self.repetition_penalty, (int, float)) or not self.repetition_penalty > 0:
            raise bad("repetition_penalty", "a number > 0 (1.0 = no penalty)")
        if not _is_int(self.no_repeat_ngram_size) or self.no_repeat_ngram_size < 0:
            raise bad("no_repeat_ngram_size", "an integer >= 0")
        if not _is_int(self.num_beams) or self.num_beams < 1:
            raise bad("num_beams", "an integer >= 1")
        if not _is_int(self.num_return_sequences) or self.num_return_sequences < 1:
            raise bad("num_return_sequences", "an integer >= 1")
        if self.num_return_sequences > self.num_beams and (not self.do_sample or self.num_beams > 1):
            raise bad(
                "num_return_sequences",
                f"at most num_beams={self.num_beams} for greedy and beam search (sample with "
                "do_sample=True and num_beams=1, or raise num_beams)",
            )
        if self.early_stopping not in (True, False, "never"):
            raise bad("early_stopping", "True, False or 'never'")
        if not isinstance(self.length_penalty, (int, float)):
            raise bad("length_penalty", "a number")
        for name in ("bos_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 0):
                raise bad(name, "a token id >= 0 or None")
        try:
            ids = token_id_list(self.eos_token_id)
        except ConfigError:
            ids = [-1]
        if not all(i >= 0 for i in ids):
            raise bad("eos_token_id", "a token id >= 0, a list of them, or None")
        if self.stop_strings is not None:
            strings = [self.stop_strings] if isinstance(self.stop_strings, str) else self.stop_strings
            if not strings or not all(isinstance(s, str) and s for s in strings):
                raise bad("stop_strings", "a non-empty string or list of non-empty strings")
        if self.seed is not None and not _is_int(self.seed):
            raise bad("seed", "an integer or None")

    # -- derived values -----------------------------------------------------------------------
    @property
    def eos_token_ids(self) -> list[int]:
        return token_id_list(self.eos_token_id)

    @property
    def stop_string_list(self) -> list[str]:
        if self.stop_strings is None:
            return []
        return [self.stop_strings] if isinstance(self.stop_strings, str) else list(self.stop_strings)

    def replace(self, **overrides: Any) -> GenerationConfig:
        """A validated copy with `overrides`; unknown names raise GenerationError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise GenerationError(
                f"unknown generation parameter(s) {unknown}; valid: {sorted(names - {'extra'})}"
            )
        return dataclasses.replace(self, **overrides)

    # -- (de)serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        data.update(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationConfig:
        """Unknown keys are kept in `extra`. A null for a field that cannot be None (temperature,
        num_beams, ...) means "not set", the default, as transformers reads it."""
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
        names = set(fields)
        known = {k: v for k, v in data.items()
                 if k in names and (v is not None or "None" in str(fields[k].type))}
        extra = {k: v for k, v in data.items() if k not in names and k != "transformers_version"}
        return cls(**known, extra=extra)

    def to_diff_dict(self) -> dict[str, Any]:
        """What a file needs: the fields that differ from the defaults (and unknown keys), as
        transformers writes its own; a full dict would also pin our sampling defaults on a
        greedy config, which transformers refuses to save again."""
        default = type(self)()
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "extra" and getattr(self, f.name) != getattr(default, f.name)}
        data.update(self.extra)
        return data

    def save_pretrained(self, directory: str | Path) -> Path:
        path = Path(directory) / GENERATION_CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_diff_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> GenerationConfig:
        """Read `generation_config.json` from a checkpoint directory (or a path to the file)."""
        path = Path(directory)
        if path.is_dir():
            path = path / GENERATION_CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no {GENERATION_CONFIG_NAME} at {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise GenerationError(f"{path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_model_config(cls, model_config: Any) -> GenerationConfig:
        """Defaults for a model without a generation_config.json: its bos/eos/pad ids."""
        return cls(
            bos_token_id=getattr(model_config, "bos_token_id", None),
            eos_token_id=getattr(model_config, "eos_token_id", None),
            pad_token_id=getattr(model_config, "pad_token_id", None),
        )


def chat_sampling(model_defaults: GenerationConfig | dict[str, Any] | None, constrained: bool = False,
                  fallback: dict[str, float | int] = CHAT_SAMPLING) -> dict[str, float | int]:
    """The sampling settings of a chat reply nobody set: each of CHAT_SAMPLING's keys from the model's
    own generation config where it sets that value (differs from transformers' default), else
    `fallback`'s (CHAT_SAMPLING; a plain completion passes NEUTRAL_SAMPLING). top_k and min_p use 0
    for off, as the OpenAI-style APIs do.

    A `constrained` reply (JSON under a schema, a tool call) gets no repetition penalty unless the
    model's own config sets one: it repeats its structure and copies values from the prompt by
    design, and so it is decoded as `model.generate(json_schema=...)` decodes it (an agent takes the
    same steps in process and over a server)."""
    if isinstance(model_defaults, dict):
        model_defaults = GenerationConfig.from_dict(model_defaults)
    settings = dict(fallback)
    if constrained:
        settings["repetition_penalty"] = 1.0
    if model_defaults is None:
        return settings
    neutral = GenerationConfig()
    for name in CHAT_SAMPLING:
        value = getattr(model_defaults, name)
        if value != getattr(neutral, name):
            settings[name] = value or 0
    return settings


def chat_generate_keywords(model_defaults: GenerationConfig | dict[str, Any] | None,
                           constrained: bool = False) -> dict[str, Any]:
    """`chat_sampling` as `generate` keywords: temperature 0 is do_sample=False (greedy; the warpers
    are kept for a caller that turns sampling on), None for a warper that is off."""
    settings = chat_sampling(model_defaults, constrained)
    keywords = {"top_k": settings["top_k"] or None, "top_p": settings["top_p"], "min_p": settings["min_p"] or None,
                "repetition_penalty": settings["repetition_penalty"]}
    if settings["temperature"]:
        return {"do_sample": True, "temperature": settings["temperature"], **keywords}
    return {"do_sample": False, **keywords}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
