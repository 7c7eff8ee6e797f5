"""Layer 7: the continuous-batching engine: many requests share every forward pass.

One background thread owns the model. Each iteration it admits waiting
requests (prefilled together, left-padded, then copied into free rows of a
`SlotCache`), decodes one token for every active request in a single
forward, and retires requests that finished, hit a stop token or were
cancelled. Requests therefore join and leave the batch at token granularity:
a new request never waits for the batch to drain. `Engine.step` is one such
iteration (the thread loops over it; tests call it directly). Whatever goes
wrong while choosing one request's token fails that request alone.

Callers talk to the thread through `submit` (a bounded queue: back-pressure
raises `QueueFullError`) and receive `TokenEvent`s through the `emit`
callback they pass in; `Request.cancel()` frees the slot at the next step.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from llmos.errors import LLMOSError
from llmos.model import ContextLengthError
from llmos.serving.metrics import Metrics
from llmos.serving.sampling import RequestSampler, SamplingParams, token_logprobs
from llmos.serving.slot_cache import SlotCache


class QueueFullError(LLMOSError):
    """The engine's waiting queue is full; the client should retry later (HTTP 429)."""


@dataclass
class TokenEvent:
    """One message from the engine to a request's consumer.

    kind: "prompt" (prompt-token logprobs, once), "token" (one generated token),
    "done" (finish_reason set) or "error" (message set; `cause` the exception, when one
    request's own work raised it).
    """

    kind: str
    token_id: int | None = None
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] = field(default_factory=list)
    prompt_logprobs: list[tuple[int, float | None, list[tuple[int, float]]]] | None = None
    finish_reason: str | None = None
    message: str | None = None
    cause: Exception | None = None


@dataclass
class Request:
    prompt_ids: list[int]
    params: SamplingParams
    emit: Callable[[TokenEvent], None]
    id: int = 0
    created: float = field(default_factory=time.perf_counter)
    generated: list[int] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    sampler: RequestSampler | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    finish_reason: str | None = None
    arrival_step: int = 0  # the engine's decode-step count when it was queued

    def cancel(self) -> None:
        """Ask the engine to drop this request and free its slot (e.g. client went away)."""
        self.cancelled.set()


class Engine:
    def __init__(
        self,
        model: torch.nn.Module,
        max_batch: int = 16,
        max_queue: int = 64,
        max_len: int | None = None,
        prefill_token_budget: int = 2048,
        metrics: Metrics | None = None,
        prefill_min_batch: int = 1,
        prefill_max_wait_steps: int = 0,
    ) -> None:
        self.model = model.eval()
        self.config = model.config
        self.max_len = min(max_len or self.config.max_seq_len, self.config.max_seq_len)
        self.max_batch, self.max_queue = max_batch, max_queue
        self.prefill_token_budget = prefill_token_budget
        # A prefill stalls every running request for about one decode step, whatever its
        # size, so while requests are decoding new ones are prefilled together: once
        # `prefill_min_batch` wait (or every free row is wanted), or the oldest has waited
        # `prefill_max_wait_steps` decode steps, which bounds the extra time to first token.
        self.prefill_min_batch = max(1, prefill_min_batch)
        self.prefill_max_wait_steps = prefill_max_wait_steps
        self.steps = 0  # decode steps run so far
        self.metrics = metrics or Metrics()
        self.cache = SlotCache(
            self.config, max_batch, self.max_len, dtype=model.dtype, device=model.device
        )
        self.rows: list[Request] = []  # rows[i] is the request in cache row i
        self.metrics.track_running(lambda: len(self.rows))
        self.waiting: collections.deque[Request] = collections.deque()
        self.lock = threading.Condition()
        self.ids = itertools.count(1)
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="llmos-engine", daemon=True)

    # -- the callers' side ------------------------------------------------------------
    def start(self) -> Engine:
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.lock.notify_all()
        self.thread.join(timeout=10)

    def submit(self, prompt_ids: list[int], params: SamplingParams, emit: Callable[[TokenEvent], None]) -> Request:
        """Queue a request; raises ContextLengthError or QueueFullError instead of truncating/waiting."""
        if not prompt_ids:
            raise LLMOSError("the prompt is empty after tokenization; give at least one token", param="prompt")
        if len(prompt_ids) >= self.max_len and not (params.max_tokens == 0 and len(prompt_ids) <= self.max_len):
            raise ContextLengthError(
                f"the prompt has {len(prompt_ids)} tokens; this model's context window is "
                f"{self.max_len} tokens (prompt + completion), so the prompt must be shorter"
            )
        request = Request(prompt_ids=list(prompt_ids), params=params, emit=emit, id=next(self.ids))
        request.sampler = RequestSampler(params, fallback_seed=int(torch.randint(0, 2**62, (1,))),
                                         prompt_length=len(prompt_ids))
        request.arrival_step = self.steps
        with self.lock:
            if len(self.waiting) >= self.max_queue:
                self.metrics.rejected_queue_full()
                raise QueueFullError(
                    f"the server is busy: {len(self.waiting)} requests are waiting "
                    f"(max_queue={self.max_queue}); retry later"
                )
            self.waiting.append(request)
            self.metrics.set_queue_depth(len(self.waiting))
            self.lock.notify_all()
        return request

    def room_for(self, prompt_length: int) -> int:
        """How many tokens a prompt of this length may still generate."""
        return max(self.max_len - prompt_length, 0)

    # -- the engine thread --------------------------------------------------------------
    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self.lock:
                while not self.stopping and not self.waiting and not self.rows:
                    self.lock.wait(timeout=1.0)
                if self.stopping:
                    break
            self.step()
        for request in list(self.rows) + list(self.waiting):
            request.emit(TokenEvent("error", message="the server is shutting down"))

    @torch.no_grad()
    def step(self) -> None:
        """One iteration of the engine: admit and prefill what is due, then decode one token for
        every running request. A failure inside one request's row fails that request only; a
        failure of the shared forward pass fails the running batch, never the server."""
        with self.lock:
            admitted = self._take_admissible()
        try:
            if admitted:
                self._prefill(admitted)
                self._retire()  # those that ended (or failed) on their first token
            if self.rows:
                self._decode_step()
        except Exception as exc:  # never let one bad step kill the server
            for request in {id(r): r for r in self.rows + admitted}.values():
                request.emit(TokenEvent("error", message=f"internal engine error: {exc}"))
            self.rows = []
            self.cache = SlotCache(
                self.config, self.max_batch, self.max_len, self.model.dtype, self.model.device
            )

    def _take_admissible(self) -> list[Request]:
        """Waiting requests that fit in free rows and this step's prefill budget."""
        taken: list[Request] = []
        if not self._prefill_due():
            return taken
        budget = self.prefill_token_budget
        free = self.cache.free_rows
        while self.waiting and len(taken) < free:
            request = self.waiting[0]
            if request.cancelled.is_set():
                self.waiting.popleft()
                self.metrics.finished("cancelled", request)
                continue
            if taken and len(request.prompt_ids) > budget:
                break
            taken.append(self.waiting.popleft())
            budget -= len(request.prompt_ids)
        self.metrics.set_queue_depth(len(self.waiting))
        return taken

    def _prefill_due(self) -> bool:
        """Whether to prefill now rather than gather more prompts first (see __init__)."""
        if not self.rows or not self.waiting:
            return True
        wanted = min(self.prefill_min_batch, self.cache.free_rows)
        waited = self.steps - self.waiting[0].arrival_step
        return len(self.waiting) >= wanted or waited >= self.prefill_max_wait_steps

    def _prefill(self, requests: list[Request]) -> None:
        """Run the prompts as one left-padded batch, then give each a row and its first token."""
        from llmos.model.cache import KVCache

        longest = max(len(r.prompt_ids) for r in requests)
        device = self.model.device
        ids = torch.zeros(len(requests), longest, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for i, request in enumerate(requests):
            n = len(request.prompt_ids)
            ids[i, longest - n :] = torch.tensor(request.prompt_ids, device=device)
            mask[i, longest - n :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        scratch = KVCache(self.config, len(requests), longest, self.model.dtype, device)
        keep_all = any(r.params.prompt_logprobs for r in requests)
        out = self.model(ids, attention_mask=mask, position_ids=positions, cache=scratch,
                         logits_to_keep=0 if keep_all else 1)
        for i, request in enumerate(requests):
            n = len(request.prompt_ids)
            try:
                if request.params.prompt_logprobs:
                    request.emit(TokenEvent("prompt", prompt_logprobs=self._score_prompt(
                        out.logits[i, longest - n :], request)))
            except Exception as exc:
                self._fail(request, exc, "scoring the prompt")
                continue
            if request.params.max_tokens == 0:
                self._finish(request, "length")
                continue
            self.cache.insert(scratch, i, slice(longest - n, longest))
            self.rows.append(request)
            self._accept_token(len(self.rows) - 1, out.logits[i, -1:].float())

    def _score_prompt(self, logits: torch.Tensor, request: Request):
        """Log-probabilities of prompt tokens 1..n-1 given their prefixes (token 0 has none)."""
        top = request.params.logprobs or 0
        ids = torch.tensor(request.prompt_ids, device=logits.device)
        scored = token_logprobs(logits[:-1].float().log_softmax(-1), ids[1:], top)
        return [(request.prompt_ids[0], None, [])] + scored

    def _decode_step(self) -> None:
        self._decode_rows()
        self._retire()

    def _decode_rows(self) -> None:
        started = time.perf_counter()
        mask, positions = self.cache.decode_inputs()
        last = torch.tensor([r.generated[-1] for r in self.rows], device=positions.device)[:, None]
        out = self.model(last, attention_mask=mask, position_ids=positions, cache=self.cache,
                         logits_to_keep=1)
        logits = out.logits[:, -1].float()  # (active, V)
        self.metrics.observe_batch(len(self.rows), time.perf_counter() - started)
        self.steps += 1
        greedy = logits.argmax(-1).tolist() if any(r.params.plain_argmax for r in self.rows) else None
        for row in range(len(self.rows)):
            self._accept_token(row, logits[row : row + 1], greedy[row] if greedy else None)

    def _accept_token(self, row: int, logits: torch.Tensor, greedy_choice: int | None = None) -> None:
        """Choose, record and emit one token for the request in `row`; mark it done if it ended.
        If choosing fails (a bug, a hostile setting), only this request fails: the row is retired."""
        request = self.rows[row]
        if request.cancelled.is_set():
            return
        params = request.params
        try:
            if params.plain_argmax and greedy_choice is not None:
                token = greedy_choice
            else:
                history = torch.tensor([request.prompt_ids + request.generated])
                token = request.sampler.choose(history, logits)
            event = TokenEvent("token", token_id=token)
            if params.logprobs is not None:
                (_, event.logprob, event.top_logprobs), = token_logprobs(
                    logits.log_softmax(-1), torch.tensor([token]), params.logprobs)
        except Exception as exc:
            self._fail(request, exc, "choosing a token")
            return
        request.generated.append(token)
        now = time.perf_counter()
        if request.first_token_at is None:
            request.first_token_at = now
            self.metrics.observe_ttft(now - request.created)
        else:
            self.metrics.observe_itl(now - request.last_token_at)
        request.last_token_at = now
        self.metrics.tokens_out(1)
        request.emit(event)
        total = len(request.prompt_ids) + len(request.generated)
        if token in params.stop_token_ids:
            self._finish(request, "stop")
        elif len(request.generated) >= params.max_tokens or total >= self.max_len:
            self._finish(request, "length")

    def _finish(self, request: Request, reason: str) -> None:
        request.finish_reason = reason
        request.cancelled.set()  # the row is retired at the end of this step
        request.emit(TokenEvent("done", finish_reason=reason))
        self.metrics.finished(reason, request)

    def _fail(self, request: Request, exc: Exception, doing: str) -> None:
        """End one request with an error event; its row (if any) is retired at the end of this step."""
        request.finish_reason = "error"
        request.cancelled.set()
        request.emit(TokenEvent("error", message=f"this request failed while {doing}: {exc}", cause=exc))
        self.metrics.finished("error", request)

    def _retire(self) -> None:
        """Free rows of requests that finished or were cancelled (walk backwards: rows move)."""
        for row in range(len(self.rows) - 1, -1, -1):
            request = self.rows[row]
            if not request.cancelled.is_set():
                continue
            if request.finish_reason is None:
                self.metrics.finished("cancelled", request)
            moved = self.cache.remove(row)
            if moved is not None:
                self.rows[row] = self.rows[moved]
            self.rows.pop()
