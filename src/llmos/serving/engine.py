"""Layer 7: the continuous-batching engine: many requests share every forward pass.

One background thread owns the model. Each iteration (`step`) the scheduler
says who runs (`scheduler.Scheduler`: admission under the KV budget, prefix
reuse, chunked prefill, preemption), the runner computes this step's prompt
chunks and one decode token for every running row (`runner.Runner`, the
compiled step), the batched sampler picks every row's token at once
(`batch_sampler.choose`), and the output side emits them. Requests join and
leave at token granularity. Whatever goes wrong in one request's work (its
prompt chunk, its grammar, its row of a failed batch) fails that request
alone, logged with its traceback and id; the server goes on.

Callers talk to the thread through `submit` (a bounded queue: back-pressure
raises `QueueFullError`) and receive `TokenEvent`s through the `emit`
callback they pass in; `Request.cancel()` drops it at the next step. `stop`
stops admitting, lets running requests finish for `grace` seconds, then
cancels what is left.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from llmos.errors import LLMOSError
from llmos.model import ContextLengthError
from llmos.serving.batch_sampler import RowState, choose
from llmos.serving.kv_blocks import BlockManager, KVPool
from llmos.serving.metrics import Metrics
from llmos.serving.runner import Runner
from llmos.serving.sampling import SamplingParams, token_logprobs
from llmos.serving.scheduler import Chunk, Scheduler, tokens_of

log = logging.getLogger("llmos.serving")
DEFAULT_KV_BUDGET_BYTES = 2 << 30
BLOCK_SIZE = 16


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
    sampling: RowState | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    finish_reason: str | None = None
    blocks: list[int] = field(default_factory=list)  # its KV blocks (the scheduler's)
    computed: int = 0  # positions whose keys and values are in the cache
    prompt_scores: list[torch.Tensor] = field(default_factory=list)  # prompt logprobs: chunk logits

    @property
    def reuse_prefix(self) -> bool:
        return not self.params.prompt_logprobs  # scoring the prompt needs every position computed

    def is_cancelled(self) -> bool:
        return self.cancelled.is_set()

    def cancel(self) -> None:
        """Ask the engine to drop this request and free its blocks (e.g. client went away)."""
        self.cancelled.set()


def kv_blocks_for(config, dtype: torch.dtype, max_len: int, budget_bytes: int | None) -> int:
    """How many KV blocks a budget buys; never fewer than one request of the full context needs."""
    per_token = KVPool.bytes_per_token(config, dtype)
    tokens = (budget_bytes if budget_bytes is not None else DEFAULT_KV_BUDGET_BYTES) // per_token
    return max(-(-tokens // BLOCK_SIZE), -(-(max_len + 1) // BLOCK_SIZE))


class Engine:
    def __init__(
        self,
        model: torch.nn.Module,
        max_batch: int = 16,
        max_queue: int = 64,
        max_len: int | None = None,
        kv_budget_bytes: int | None = None,
        chunk_tokens: int = 32,
        metrics: Metrics | None = None,
    ) -> None:
        self.model = model.eval()
        self.config = model.config
        self.max_len = min(max_len or self.config.max_seq_len, self.config.max_seq_len)
        self.max_batch, self.max_queue = max_batch, max_queue
        num_blocks = kv_blocks_for(self.config, model.dtype, self.max_len, kv_budget_bytes)
        self.pool = KVPool(self.config, num_blocks, BLOCK_SIZE, model.dtype, model.device)
        self.blocks = BlockManager(num_blocks, BLOCK_SIZE)
        self.kv_budget_bytes = num_blocks * BLOCK_SIZE * KVPool.bytes_per_token(self.config, model.dtype)
        self.scheduler = Scheduler(self.blocks, max_batch, chunk_tokens, chunk_tokens)
        self.runner = Runner(model, self.pool)
        self.steps = 0  # engine steps run so far
        self.metrics = metrics or Metrics()
        self.metrics.track_running(lambda: len(self.scheduler.running))
        self.lock = threading.Condition()
        self.ids = itertools.count(1)
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="llmos-engine", daemon=True)

    @property
    def rows(self) -> list[Request]:
        """Requests admitted and running (prefilling or decoding)."""
        return self.scheduler.running

    @property
    def waiting(self):
        return self.scheduler.waiting

    # -- the callers' side ------------------------------------------------------------
    def start(self) -> Engine:
        self.thread.start()
        return self

    def stop(self, grace: float = 0.0) -> None:
        """Stop admitting; let running requests finish for up to `grace` seconds; cancel the rest."""
        deadline = time.monotonic() + grace
        with self.lock:
            self.stopping = True
            for request in list(self.scheduler.waiting):
                request.emit(TokenEvent("error", message="the server is shutting down"))
                request.cancel()
            self.lock.notify_all()
        while self.thread.is_alive() and self.scheduler.running and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.lock:
            for request in list(self.scheduler.running):
                request.emit(TokenEvent("error", message="the server is shutting down"))
                request.cancel()
            self.lock.notify_all()
        if self.thread.is_alive():
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
        request.sampling = RowState.start(params, request.prompt_ids, self.config.vocab_size,
                                          fallback_seed=int(torch.randint(0, 2**62, (1,))))
        with self.lock:
            if self.stopping:
                raise QueueFullError("the server is shutting down; retry on another server")
            if len(self.scheduler.waiting) >= self.max_queue:
                self.metrics.rejected_queue_full()
                raise QueueFullError(
                    f"the server is busy: {len(self.scheduler.waiting)} requests are waiting "
                    f"(max_queue={self.max_queue}); retry later"
                )
            self.scheduler.add(request)
            self.metrics.set_queue_depth(len(self.scheduler.waiting))
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
                while not self.scheduler.waiting and not self.scheduler.running:
                    if self.stopping:
                        return
                    self.lock.wait(timeout=1.0)
            self.step()

    @torch.no_grad()
    def step(self) -> None:
        """One iteration: this step's prompt chunks, then one token for every decoding row."""
        with self.lock:
            plan = self.scheduler.plan()
            self.metrics.set_queue_depth(len(self.scheduler.waiting))
        for request in plan.dropped:
            if request.finish_reason is None:
                self.metrics.finished("cancelled", request)
        self.metrics.tokens_cached(plan.cached_tokens)
        for wave in plan.prefill_waves():
            self._prefill(wave)
        if plan.decode:
            self._decode([r for r in plan.decode if not r.is_cancelled()])
        self.steps += 1
        with self.lock:
            for request in [r for r in self.scheduler.running if r.is_cancelled()]:
                self.scheduler.finish(request)

    def _prefill(self, chunks: list[Chunk]) -> None:
        """Compute chunks of different requests in one forward; when it fails, each alone, so a
        failure stays with the request that caused it."""
        chunks = [c for c in chunks if not c.request.is_cancelled()]
        if not chunks:
            return
        try:
            logits = self.runner.prefill(chunks)
        except Exception as exc:
            if len(chunks) == 1:
                self._fail(chunks[0].request, exc, "computing its prompt")
                return
            log.exception("a prompt step of %d chunks failed; retrying each chunk alone", len(chunks))
            for chunk in chunks:
                self._prefill([chunk])
            return
        for chunk, chunk_logits in zip(chunks, logits, strict=True):
            self._prefilled(chunk, chunk_logits)

    def _prefilled(self, chunk: Chunk, logits: torch.Tensor) -> None:
        request = chunk.request
        with self.lock:
            self.scheduler.computed(request, chunk.end)
        if chunk.end < len(tokens_of(request)):
            if request.params.prompt_logprobs:
                request.prompt_scores.append(logits)
            return
        if request.params.prompt_logprobs and not request.generated:
            request.prompt_scores.append(logits)
            try:
                request.emit(TokenEvent("prompt", prompt_logprobs=self._score_prompt(request)))
            except Exception as exc:
                self._fail(request, exc, "scoring the prompt")
                return
            if request.params.max_tokens == 0:
                self._finish(request, "length")
                return
        self._accept([request], logits[-1:])

    def _decode(self, rows: list[Request]) -> None:
        if not rows:
            return
        started = time.perf_counter()
        try:
            logits = self.runner.decode(rows)
        except Exception:  # find the row(s) at fault: each alone; the others go on
            log.exception("a decode step of %d rows failed; retrying each row alone", len(rows))
            survivors, parts = [], []
            for request in rows:
                try:
                    parts.append(self.runner.decode([request]))
                    survivors.append(request)
                except Exception as exc:
                    self._fail(request, exc, "decoding")
            if not survivors:
                return
            rows, logits = survivors, torch.cat(parts)
        self.metrics.observe_batch(len(rows), time.perf_counter() - started)
        with self.lock:
            for request in rows:
                self.scheduler.computed(request, request.computed + 1)
        self._accept(rows, logits)

    def _accept(self, rows: list[Request], logits: torch.Tensor) -> None:
        """Choose, record and emit one token per row; mark the rows that ended."""
        tokens, errors = choose([r.sampling for r in rows], logits)
        now = time.perf_counter()
        for i, request in enumerate(rows):
            if request.is_cancelled():
                continue
            if errors[i] is not None:
                self._fail(request, errors[i], "choosing a token")
                continue
            token, params = tokens[i], request.params
            event = TokenEvent("token", token_id=token)
            if params.logprobs is not None:
                try:
                    (_, event.logprob, event.top_logprobs), = token_logprobs(
                        logits[i : i + 1].log_softmax(-1), torch.tensor([token]), params.logprobs)
                except Exception as exc:
                    self._fail(request, exc, "scoring its token")
                    continue
            request.generated.append(token)
            request.sampling.accept(token)
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

    def _score_prompt(self, request: Request):
        """Log-probabilities of prompt tokens 1..n-1 given their prefixes (token 0 has none)."""
        logits = torch.cat(request.prompt_scores)
        request.prompt_scores = []
        top = request.params.logprobs or 0
        ids = torch.tensor(request.prompt_ids, device=logits.device)
        scored = token_logprobs(logits[:-1].float().log_softmax(-1), ids[1:], top)
        return [(request.prompt_ids[0], None, [])] + scored

    def _finish(self, request: Request, reason: str) -> None:
        request.finish_reason = reason
        request.cancel()  # its blocks are freed at the end of this step
        request.emit(TokenEvent("done", finish_reason=reason))
        self.metrics.finished(reason, request)

    def _fail(self, request: Request, exc: Exception, doing: str) -> None:
        """End one request with an error event (and a logged traceback); its blocks are freed at the end
        of this step."""
        log.error("request %d failed while %s", request.id, doing, exc_info=exc)
        request.finish_reason = "error"
        request.cancel()
        request.emit(TokenEvent("error", message=f"this request failed while {doing}: {exc}", cause=exc))
        self.metrics.finished("error", request)
