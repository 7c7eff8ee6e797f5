"""Layer 7: one HTTP request's choices, submitted to the engine and read back as text pieces.

A request with several prompts and n > 1 becomes several engine requests
("choices"). Their token events arrive from the engine thread on one asyncio
queue; `ChoiceGroup.pieces` turns them into text deltas per choice (stop
strings cut the text and cancel the engine request), and cancels everything
if the client goes away, so its batch rows are freed at the next step. A
grammar the engine gives up on mid-reply fails the request with a 400 naming
the field its schema came from (structured output fails closed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from llmos.errors import LLMOSError
from llmos.generation.constrained import ConstraintError
from llmos.generation.replies import TextStream
from llmos.model import ContextLengthError
from llmos.serving.engine import Engine, QueueFullError, Request, TokenEvent
from llmos.serving.errors import APIError
from llmos.serving.sampling import SamplingParams
from llmos.serving.text import ServedTokenizer

TokenInfo = tuple[int, float | None, list[tuple[int, float]]]  # (id, logprob, top pairs)
DISCONNECT_CHECK_SECONDS = 0.25


@dataclass
class Choice:
    index: int
    prompt_ids: list[int]
    stream: TextStream
    request: Request | None = None
    tokens: list[TokenInfo] = field(default_factory=list)
    prompt_logprobs: list[TokenInfo] | None = None
    finish_reason: str | None = None


@dataclass
class Piece:
    """New text (and the tokens behind it) for one choice; finish_reason set on its last piece."""

    index: int
    text: str
    tokens: list[TokenInfo]
    finish_reason: str | None = None


class ChoiceGroup:
    def __init__(self, engine: Engine, tokenizer: ServedTokenizer, constraint_field: str | None = None) -> None:
        """constraint_field: the request field the choices' grammar comes from (named in a 400)."""
        self.engine, self.tokenizer, self.constraint_field = engine, tokenizer, constraint_field
        self.choices: list[Choice] = []
        self.queue: asyncio.Queue[tuple[int, TokenEvent]] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.prompt_tokens = 0

    def submit(self, prompts: list[list[int]], n: int, params: SamplingParams, stop: list[str]) -> None:
        """Queue n choices per prompt; all or nothing (a full queue cancels the ones already in).
        More choices than the queue can ever hold is the client's error (400), not a busy server:
        retrying could never succeed, and splitting it here would let one request hold the queue."""
        wanted, limit = len(prompts) * n, self.engine.max_queue
        if wanted > limit:
            raise APIError(400, f"this request needs {wanted} sequences ({len(prompts)} prompts x n={n}) but "
                           f"this server queues at most {limit} (max_queue); send at most {limit} prompts x n "
                           "per request", param="prompt" if len(prompts) > limit else "n",
                           code="too_many_sequences")
        try:
            for p, prompt_ids in enumerate(prompts):
                for j in range(n):
                    index = p * n + j
                    choice = Choice(index, prompt_ids, TextStream(self.tokenizer, stop))
                    seed = None if params.seed is None else params.seed + j
                    choice_params = SamplingParams(**{**params.__dict__, "seed": seed})
                    choice.request = self.engine.submit(prompt_ids, choice_params, self._emitter(index))
                    self.choices.append(choice)
        except QueueFullError as exc:
            self.cancel()
            raise APIError(429, str(exc), code="queue_full", headers={"Retry-After": "1"}) from None
        except ContextLengthError as exc:
            self.cancel()
            raise APIError(400, str(exc), param="prompt", code="context_length_exceeded") from None
        except LLMOSError as exc:
            self.cancel()
            raise APIError(400, str(exc), param=exc.param) from None
        self.prompt_tokens = sum(len(p) for p in prompts)
        self.engine.metrics.tokens_in(self.prompt_tokens)

    def _emitter(self, index: int) -> Callable[[TokenEvent], None]:
        def emit(event: TokenEvent) -> None:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (index, event))

        return emit

    def _failure(self, event: TokenEvent) -> APIError:
        if isinstance(event.cause, ConstraintError):  # the schema outgrew the engine mid-reply
            field = self.constraint_field
            return APIError(400, f"Invalid schema for '{field}': the reply could not go on under it "
                            f"({event.cause}); simplify the schema", param=field,
                            code="invalid_tools" if field == "tools" else "invalid_response_format")
        return APIError(500, event.message or "internal engine error", code="engine_error")

    def cancel(self) -> None:
        for choice in self.choices:
            if choice.request is not None:
                choice.request.cancel()

    async def pieces(self, disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[Piece]:
        """Yield text pieces until every choice has finished; stop early if the client left."""
        pending: dict[int, list[TokenInfo]] = {c.index: [] for c in self.choices}
        unfinished = len(self.choices)
        checked = self.loop.time()
        try:
            while unfinished:
                if self.loop.time() - checked > DISCONNECT_CHECK_SECONDS:  # tokens flowing: still ask,
                    checked = self.loop.time()  # or a client that left keeps a row decoding for nobody
                    if await disconnected():
                        return
                try:  # events usually wait already: skip wait_for's task and timer then
                    index, event = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    try:
                        index, event = await asyncio.wait_for(self.queue.get(), timeout=0.5)
                    except asyncio.TimeoutError:
                        if await disconnected():
                            return
                        continue
                choice = self.choices[index]
                if choice.finish_reason is not None:
                    continue  # a token that raced a stop-string cancel
                if event.kind == "error":
                    raise self._failure(event)
                if event.kind == "prompt":
                    choice.prompt_logprobs = event.prompt_logprobs
                    continue
                if event.kind == "token":
                    info = (event.token_id, event.logprob, event.top_logprobs)
                    choice.tokens.append(info)
                    pending[index].append(info)
                    delta = choice.stream.push(event.token_id)
                    if choice.stream.stopped:
                        choice.request.cancel()
                        choice.finish_reason = "stop"
                    elif not delta:
                        continue
                else:  # done
                    delta = choice.stream.flush()
                    choice.finish_reason = event.finish_reason
                if choice.finish_reason is not None:
                    unfinished -= 1
                yield Piece(index, delta, pending[index], choice.finish_reason)
                pending[index] = []
        finally:
            if unfinished:
                self.cancel()
