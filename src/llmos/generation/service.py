"""Layer 5: `Generator`, the one generation service every app talks to, whatever runs the model.

    completions = generator.generate([messages, other_messages], GenerationParams(max_new_tokens=64))
    for event in generator.stream([messages], params): print(event.text, end="")

A prompt is a chat (a list of {"role", "content"} messages, rendered through
the model's chat template) or token ids. A chat may come with tools
(`GenerationParams.tools`, OpenAI function dicts, and `tool_choice`): they are
listed and the reply constrained in the one tool-call format
(`generation.tool_calls`), as `/v1/chat/completions` does, and the reply's
text holds its `<tool_call>` blocks; a backend whose model holds a tool-use
adapter (`tools_adapter`) decodes those requests through it. `GenerationParams` are the settings
every backend honours: length, greedy or sampled (temperature, top-p, top-k,
min-p, repetition penalty, seed), stop strings and one grammar constraint
(JSON schema, regex, Lark grammar or choices); `extra` carries generate()'s
other keywords (num_beams, no_repeat_ngram_size, ...), which only a model in
this process can follow. A `Completion` is the reply's text cut at its end
(`replies.cut_reply`: the same cut for every backend), its token ids, why it
ended ("stop" or "length") and, when asked for, the mean log-probability the
model gave its tokens (the model's own distribution, before any constraint).

Three backends: `LocalGenerator` (`generation.local`: `generate()` on a model
in this process, prompts of one call decoded as one left-padded batch),
`serving.generator.EngineGenerator` (submits to the server's
continuous-batching engine, the one owner of a served model: every caller
shares its batches and its prefix cache) and `serving.remote.RemoteGenerator`
(an OpenAI-compatible server over HTTP). Greedy replies are the same whichever
backend a model runs behind. `parallel` says how many requests a backend
decodes at once, so a caller with many (a workflow's items) may keep that many
in flight.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmos.generation.constrained import CONSTRAINT_KEYS
from llmos.generation.tool_calls import renders_tools, template_messages, tool_grammar
from llmos.generation_config import DEFAULT_MAX_NEW_TOKENS, GenerationConfig, GenerationError

Prompt = list[dict[str, Any]] | list[int]  # chat messages, or token ids
TOOL_CHOICES = ("auto", "required", "none")

# generate() keywords that GenerationParams holds itself (the rest go to `extra`)
OWN_KEYS = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "min_p", "repetition_penalty",
            "seed", "stop_strings")
# generate() keywords a Generator decides itself: its stop ids, padding and outputs
DECIDED_KEYS = ("eos_token_id", "pad_token_id", "bos_token_id", "return_dict_in_generate", "output_scores",
                "output_logits", "max_length")


@dataclass(frozen=True)
class GenerationParams:
    """How to decode one prompt. temperature 0 is greedy; top_k 0, top_p 1, min_p 0 and
    repetition_penalty 1 are off. `constraint`: {"json_schema": ...}, {"regex": ...}, {"grammar": ...}
    or {"choices": [...]}. `logprobs`: report the mean log-probability of the reply's tokens.
    `tools`: function dicts ({"name", "description", "parameters"}) a chat may call, under
    `tool_choice` "auto" (a call or text), "required" (a call) or "none" (text; tools not listed)."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    constraint: dict[str, Any] | None = None
    logprobs: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str = "auto"

    def __post_init__(self) -> None:
        def bad(name: str, valid: str) -> GenerationError:
            return GenerationError(f"{name}={getattr(self, name)!r} is invalid; valid: {valid}", param=name)

        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise bad("max_new_tokens", "an integer >= 1")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) \
                or not self.temperature >= 0:
            raise bad("temperature", "a number >= 0 (0: greedy)")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise bad("top_p", "a number in (0, 1]")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise bad("top_k", "an integer >= 0 (0: off)")
        if not isinstance(self.min_p, (int, float)) or not 0 <= self.min_p <= 1:
            raise bad("min_p", "a number in [0, 1]")
        if not isinstance(self.repetition_penalty, (int, float)) or not self.repetition_penalty > 0:
            raise bad("repetition_penalty", "a number > 0 (1: off)")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise bad("stop", "a tuple of non-empty strings")
        if self.constraint is not None and (not isinstance(self.constraint, dict) or len(self.constraint) != 1
                                            or next(iter(self.constraint)) not in CONSTRAINT_KEYS):
            raise bad("constraint", f"None or a dict of one of {list(CONSTRAINT_KEYS)}")
        if isinstance(self.tools, (str, dict)) or not all(isinstance(t, dict) and t.get("name") for t in self.tools):
            raise bad("tools", "a tuple of function dicts, each with a name")
        if self.tool_choice not in TOOL_CHOICES:
            raise bad("tool_choice", " | ".join(TOOL_CHOICES))
        if self.calls_tools and self.constraint is not None:
            raise bad("constraint", "None when tools may be called (the tool-call grammar is the constraint)")
        decided = sorted(set(self.extra) & {*OWN_KEYS, *DECIDED_KEYS, *CONSTRAINT_KEYS})
        if decided:
            raise bad("extra", f"generate() keywords other than {decided}, which are fields or decided here")
        if self.extra.get("num_return_sequences", 1) != 1:
            raise bad("extra", "num_return_sequences 1: a Generator gives one completion per prompt")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1

    @property
    def calls_tools(self) -> bool:
        """Whether the reply may call tools (tools given, tool_choice not "none")."""
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def listed_tools(self) -> list[dict[str, Any]]:
        """The tools a chat is rendered with: none under tool_choice "none"."""
        return list(self.tools) if self.calls_tools else []

    def reply_constraint(self) -> dict[str, Any] | None:
        """The grammar the reply decodes under: the tool-call grammar when tools may be called."""
        if self.calls_tools:
            return {"grammar": tool_grammar(list(self.tools), self.tool_choice == "auto", False)}
        return self.constraint

    @classmethod
    def from_generate_kwargs(cls, kwargs: dict[str, Any], constraint: dict[str, Any] | None = None,
                             logprobs: bool = False) -> GenerationParams:
        """The params for keywords written for `generate()` (`GenerationConfig` names and meanings:
        do_sample=False is greedy; sampling without top_k keeps transformers' 50); a bad value is a
        `GenerationError` naming it."""
        config = GenerationConfig().replace(**kwargs)  # validates, with generate's own messages
        extra = {k: v for k, v in kwargs.items() if k not in OWN_KEYS}
        if config.do_sample:
            sampling = {"temperature": float(config.temperature), "top_p": float(config.top_p),
                        "top_k": int(config.top_k or 0), "min_p": float(config.min_p or 0.0)}
        else:
            sampling = {"temperature": 0.0}
        return cls(max_new_tokens=config.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
                   repetition_penalty=float(config.repetition_penalty), seed=config.seed,
                   stop=tuple(config.stop_string_list), constraint=constraint, logprobs=logprobs, extra=extra,
                   **sampling)

    def replace(self, **changes: Any) -> GenerationParams:
        return dataclasses.replace(self, **changes)


@dataclass
class Completion:
    """One reply: its text (cut before a stop id or stop string), its token ids, why it ended
    ("stop", or "length" when max_new_tokens or the context cut it), and the mean log-probability of
    its tokens when `GenerationParams.logprobs` asked for it."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str = "stop"
    log_prob: float | None = None
    max_new_tokens: int | None = None

    @property
    def cut(self) -> bool:
        """Whether the length limit, not the model, ended it."""
        return self.finish_reason == "length"


@dataclass
class StreamEvent:
    """New text of prompt `index`; its last event carries the whole `completion`."""

    index: int
    text: str
    completion: Completion | None = None


def per_prompt(params: GenerationParams | Sequence[GenerationParams] | None, n: int) -> list[GenerationParams]:
    """One params per prompt: the same for all, or a list as long as the prompts."""
    if params is None:
        params = GenerationParams()
    if isinstance(params, GenerationParams):
        return [params] * n
    params = list(params)
    if len(params) != n or not all(isinstance(p, GenerationParams) for p in params):
        raise GenerationError(f"give one GenerationParams, or a list of {n} (one per prompt); got {len(params)}",
                              param="params")
    return params


def check_prompts(prompts: Sequence[Prompt]) -> list[Prompt]:
    if isinstance(prompts, (str, dict)) or not isinstance(prompts, Sequence) or not prompts:
        raise GenerationError("prompts must be a non-empty list of prompts (each a list of chat messages or of "
                              "token ids)", param="prompts")
    for i, prompt in enumerate(prompts):
        chat = isinstance(prompt, list) and prompt and all(isinstance(m, dict) and "role" in m for m in prompt)
        ids = isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool)
                                                          for t in prompt)
        if not (chat or ids):
            raise GenerationError(f"prompts[{i}] is neither a list of chat messages ({{'role', 'content'}}) nor "
                                  f"a non-empty list of token ids: {str(prompt)[:60]}", param=f"prompts[{i}]")
    return list(prompts)


class Generator(ABC):
    """The interface (see the module docstring). `tokenizer` is the model's LLMOS tokenizer where the
    backend has it in this process (None over HTTP); `stop_ids` what ends a reply; `max_len` the
    tokens a request may hold (prompt + reply), when known."""

    tokenizer: Any = None
    stop_ids: list[int] = []
    max_len: int | None = None
    parallel: int = 1  # requests decoded together: a caller may keep this many in flight

    def prompt_ids(self, prompt: Prompt, params: GenerationParams | None = None) -> list[int]:
        """The token ids a prompt stands for: chat messages through the model's chat template, with
        the tools of `params` listed as the server lists them."""
        check_prompts([prompt])
        if isinstance(prompt[0], int):
            return list(prompt)
        if self.tokenizer is None:
            raise GenerationError(f"{type(self).__name__} has no tokenizer here to render a chat", param="prompts")
        tools = params.listed_tools if params is not None else []
        messages, listed = template_messages(prompt, tools, renders_tools(self.tokenizer.chat_template))
        return list(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tools=listed))

    def prompt_rows(self, prompts: Sequence[Prompt], params: GenerationParams | Sequence[GenerationParams] | None
                    ) -> tuple[list[GenerationParams], list[list[int]]]:
        """(one params per prompt, each prompt's token ids rendered with its params' tools)."""
        settings = per_prompt(params, len(prompts))
        return settings, [self.prompt_ids(p, s) for p, s in zip(prompts, settings, strict=True)]

    def generate(self, prompts: Sequence[Prompt],
                 params: GenerationParams | Sequence[GenerationParams] | None = None) -> list[Completion]:
        """Every prompt's completion, in order."""
        prompts = check_prompts(prompts)
        done: dict[int, Completion] = {}
        for event in self.stream(prompts, params):
            if event.completion is not None:
                done[event.index] = event.completion
        return [done[i] for i in range(len(prompts))]

    @abstractmethod
    def stream(self, prompts: Sequence[Prompt],
               params: GenerationParams | Sequence[GenerationParams] | None = None) -> Iterator[StreamEvent]:
        """Text as it is decoded, prompt by prompt or interleaved; closing the iterator early cancels
        what is still decoding."""

    def next_token_log_probs(self, prompts: Sequence[Prompt], token_ids: Sequence[int]) -> list[list[float]]:
        """For each prompt, the log-probability of each of `token_ids` being the next token (scoring
        label words, as zero-shot classification does). Backends without the logits here refuse."""
        raise GenerationError(f"{type(self).__name__} cannot score next tokens: it needs the model's logits "
                              "(use a model in this process, or the server's engine)")

    def close(self) -> None:
        """Release what the backend holds (an engine thread, a connection); the default holds nothing."""
        return None

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
