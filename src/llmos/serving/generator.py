"""Layer 7: `EngineGenerator`, the `Generator` backend that submits to the continuous-batching engine.

While a model is served, the engine owns it: the pipelines (the task routes),
the agent and workflows, the studio playground and `llmos chat` reach it
through this class, so their requests join the engine's batches and reuse its
prefix cache, beside the HTTP API's own. `generate` submits every prompt at
once and waits; `stream` hands out text as tokens arrive (closing it cancels
the requests still running). Text is cut as every backend cuts it
(`generation.replies`): at a stop id (not part of the reply) or before a stop
string. A grammar constraint (or the tool-call grammar, for a chat with tools)
runs as the engine's per-request processor; a request that may call tools
decodes through the model's tool-use adapter when `tools_adapter` names one;
`next_token_log_probs` is a one-token request whose processor reads the row
of logits the engine computed for it.

Calls block; they may come from any thread (the engine's events arrive on a
thread-safe queue). A full queue is `QueueFullError`, a prompt longer than the
context `ContextLengthError`, as for the HTTP routes.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from llmos.generation.constrained import GrammarProcessor, grammar_for
from llmos.generation.replies import TextStream, model_eos_ids
from llmos.generation.service import (
    Completion,
    GenerationParams,
    Generator,
    Prompt,
    StreamEvent,
    check_prompts,
)
from llmos.generation.tool_calls import template_messages
from llmos.generation_config import GenerationError
from llmos.serving.engine import Engine, Request, TokenEvent
from llmos.serving.sampling import SamplingParams
from llmos.serving.text import ServedTokenizer


class EngineGenerator(Generator):
    """`EngineGenerator(engine, tokenizer)`: `tokenizer` is the server's `ServedTokenizer` (its chat
    template and stop ids) or any tokenizer (one is made with the model's stop ids). `close()` stops
    the engine when `owns_engine` (an engine made for this generator alone)."""

    def __init__(self, engine: Engine, tokenizer: Any, owns_engine: bool = False,
                 tools_adapter: str | None = None) -> None:
        self.engine, self.owns_engine, self.tools_adapter = engine, owns_engine, tools_adapter
        self.served = tokenizer if isinstance(tokenizer, ServedTokenizer) else ServedTokenizer(
            tokenizer, eos_token_ids=model_eos_ids(engine.model))
        self.tokenizer = self.served.tokenizer
        self.stop_ids = list(self.served.stop_ids)
        self.max_len = engine.max_len
        self.parallel = engine.max_batch

    @classmethod
    def start(cls, model: Any, tokenizer: Any, tools_adapter: str | None = None,
              **engine_options: Any) -> EngineGenerator:
        """A generator over a new engine of its own (started now; `close()` stops it)."""
        return cls(Engine(model, **engine_options).start(), tokenizer, owns_engine=True, tools_adapter=tools_adapter)

    def close(self) -> None:
        if self.owns_engine:
            self.engine.stop()

    def prompt_ids(self, prompt: Prompt, params: GenerationParams | None = None) -> list[int]:
        """Token ids as the server renders them: a chat through its chat template (`--chat-template`),
        with the tools of `params` listed."""
        check_prompts([prompt])
        if isinstance(prompt[0], int):
            return list(prompt)
        messages, listed = template_messages(prompt, params.listed_tools if params is not None else [],
                                             self.served.renders_tools)
        return self.served.encode(self.served.render_chat(messages, tools=listed))

    # ---- submitting -------------------------------------------------------------------------------

    def _sampling(self, params: GenerationParams, prompt_length: int) -> SamplingParams:
        if params.extra:
            raise GenerationError(f"the engine does not take generate()'s {sorted(params.extra)}; those need a model "
                                  "in this process (LocalGenerator)", param=sorted(params.extra)[0])
        constraint = None
        if params.reply_constraint() is not None:
            grammar = grammar_for(**params.reply_constraint())
            vocab, tokenizer, eos = self.engine.config.vocab_size, self.tokenizer, self.stop_ids

            def constraint(length: int) -> GrammarProcessor:
                return GrammarProcessor(grammar, tokenizer, 1, length, vocab, eos)
        return SamplingParams(
            max_tokens=min(params.max_new_tokens, self.engine.room_for(prompt_length)) or params.max_new_tokens,
            temperature=0.0 if params.greedy else params.temperature, top_p=params.top_p, top_k=params.top_k,
            min_p=params.min_p, repetition_penalty=params.repetition_penalty, seed=params.seed,
            logprobs=0 if params.logprobs else None, stop_token_ids=frozenset(self.stop_ids), constraint=constraint,
            adapter=self.tools_adapter if params.calls_tools else None)

    def _submit(self, rows: list[list[int]], settings: list[SamplingParams], events: queue.Queue) -> list[Request]:
        """Every row into the engine, all or none (a refusal cancels the ones already in)."""
        requests: list[Request] = []
        try:
            for index, (row, sampling) in enumerate(zip(rows, settings, strict=True)):
                requests.append(self.engine.submit(row, sampling, _emitter(events, index)))
        except Exception:
            for request in requests:
                request.cancel()
            raise
        return requests

    def stream(self, prompts: Sequence[Prompt],
               params: GenerationParams | Sequence[GenerationParams] | None = None) -> Iterator[StreamEvent]:
        wanted, rows = self.prompt_rows(check_prompts(prompts), params)
        settings = [self._sampling(p, len(row)) for p, row in zip(wanted, rows, strict=True)]
        events: queue.Queue = queue.Queue()
        requests = self._submit(rows, settings, events)
        return self._events(requests, wanted, events)

    def _events(self, requests: list[Request], wanted: list[GenerationParams],
                events: queue.Queue) -> Iterator[StreamEvent]:
        texts = [TextStream(self.served, p.stop) for p in wanted]
        tokens: list[list[int]] = [[] for _ in requests]
        scores: list[list[float]] = [[] for _ in requests]
        finished = [False] * len(requests)
        try:
            while not all(finished):
                index, event = events.get()
                if finished[index]:
                    continue  # a token that raced a stop-string cancel
                if event.kind == "error":
                    raise event.cause if isinstance(event.cause, Exception) else GenerationError(
                        event.message or "the engine failed this request")
                if event.kind == "token":
                    if event.logprob is not None:
                        scores[index].append(event.logprob)
                    if event.token_id in self.stop_ids:
                        continue  # the done event follows; a stop id is not part of the reply
                    tokens[index].append(event.token_id)
                    delta = texts[index].push(event.token_id)
                    if texts[index].stopped:
                        requests[index].cancel()
                        finished[index] = True
                        yield StreamEvent(index, delta, self._completion(texts[index], tokens[index],
                                                                         scores[index], "stop", wanted[index]))
                    elif delta:
                        yield StreamEvent(index, delta)
                elif event.kind == "done":
                    finished[index] = True
                    delta = texts[index].flush()
                    yield StreamEvent(index, delta, self._completion(texts[index], tokens[index], scores[index],
                                                                     event.finish_reason or "stop", wanted[index]))
        finally:
            for request in requests:
                request.cancel()

    @staticmethod
    def _completion(text: TextStream, tokens: list[int], scores: list[float], reason: str,
                    params: GenerationParams) -> Completion:
        log_prob = (sum(scores) / len(scores) if scores else 0.0) if params.logprobs else None
        return Completion(text.text, list(tokens), reason, log_prob, params.max_new_tokens)

    # ---- scoring ----------------------------------------------------------------------------------

    def next_token_log_probs(self, prompts: Sequence[Prompt], token_ids: Sequence[int]) -> list[list[float]]:
        """One-token requests whose processor keeps the log-probabilities of `token_ids` from the
        logits the engine computed (the processor changes nothing: the token it picks is dropped)."""
        rows = [self.prompt_ids(p) for p in check_prompts(prompts)]
        wanted = torch.tensor(list(token_ids), dtype=torch.long)
        found: dict[int, list[float]] = {}

        def reader(index: int) -> Callable[[int], Any]:
            def read(history: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
                found[index] = logits[0].float().log_softmax(-1)[wanted].tolist()
                return logits

            return lambda prompt_length: read

        settings = [SamplingParams(max_tokens=1, temperature=0.0, stop_token_ids=frozenset(),
                                   constraint=reader(i)) for i in range(len(rows))]
        events: queue.Queue = queue.Queue()
        requests = self._submit(rows, settings, events)
        pending = len(requests)
        try:
            while pending:
                index, event = events.get()
                if event.kind == "error":
                    raise event.cause if isinstance(event.cause, Exception) else GenerationError(
                        event.message or "the engine failed this request")
                if event.kind == "done":
                    pending -= 1
        finally:
            for request in requests:
                request.cancel()
        return [found[i] for i in range(len(rows))]


def _emitter(events: queue.Queue, index: int) -> Callable[[TokenEvent], None]:
    def emit(event: TokenEvent) -> None:
        events.put((index, event))

    return emit

