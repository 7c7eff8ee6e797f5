"""Layer 7: the scheduler: who runs in the next engine step, and which KV blocks each one holds.

A request is admitted when a row is free (at most `max_batch` run) and the
blocks for its whole prompt are available, in arrival order. At admission
the longest prefix of its prompt already in the prefix cache (whole blocks;
see `kv_blocks`) is taken as computed. Its remaining prompt is then computed
in chunks whose boundaries are multiples of `chunk_tokens` counted from the
prompt's first token, so the same prompt is cut the same way whoever else is
running; a step computes chunks up to `step_tokens` and always decodes every
row whose prompt is done (one token each), so a long prompt never stalls the
others for more than one step's chunks. Requests that arrive together with the
same prefix (many clients, one system prompt) do not compute it side by side:
a request whose next block a request ahead of it is computing waits, then
takes those blocks from the cache when they are done. A decoding row takes a
new block when its last is full; when none is left, the most recently admitted request is
preempted (its blocks go back, cached; it waits at the front of the queue and
resumes from what is still cached).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from llmos.serving.kv_blocks import BlockManager, block_hashes

IDLE_STEP_TOKENS = 512  # prompt tokens a step computes when no row is decoding (nobody to stall)


class Sequence(Protocol):
    """What the scheduler reads and keeps on a request (the engine's `Request` has these)."""

    prompt_ids: list[int]
    generated: list[int]
    blocks: list[int]
    computed: int  # positions whose keys and values are in the cache
    reuse_prefix: bool  # False: compute every prompt position (prompt logprobs need their logits)

    def is_cancelled(self) -> bool: ...


@dataclass
class Chunk:
    request: Sequence
    start: int
    end: int


@dataclass
class StepPlan:
    decode: list[Sequence] = field(default_factory=list)  # one token each, in one batch
    prefill: list[Chunk] = field(default_factory=list)  # run in `prefill_waves`
    admitted: list[Sequence] = field(default_factory=list)
    cached_tokens: int = 0  # prompt tokens taken from the prefix cache (at admission or while waiting)
    preempted: list[Sequence] = field(default_factory=list)
    dropped: list[Sequence] = field(default_factory=list)  # cancelled while waiting or running

    def prefill_waves(self) -> list[list[Chunk]]:
        """The prefill chunks in batches that can run together: at most one chunk of each request
        per batch, a request's chunks in order."""
        waves: list[list[Chunk]] = []
        seen: dict[int, int] = {}  # request -> chunks of it placed so far
        for chunk in self.prefill:
            index = seen.get(id(chunk.request), 0)
            seen[id(chunk.request)] = index + 1
            if index == len(waves):
                waves.append([])
            waves[index].append(chunk)
        return waves


def tokens_of(request: Sequence) -> list[int]:
    return request.prompt_ids + request.generated


class Scheduler:
    def __init__(self, blocks: BlockManager, max_batch: int, chunk_tokens: int = 256,
                 step_tokens: int = 256) -> None:
        self.blocks, self.block_size = blocks, blocks.block_size
        self.max_batch, self.chunk_tokens = max_batch, max(chunk_tokens, blocks.block_size)
        self.step_tokens = max(step_tokens, self.chunk_tokens)
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []  # admitted, oldest first: prefilling or decoding

    def add(self, request: Sequence) -> None:
        self.waiting.append(request)

    def plan(self) -> StepPlan:
        plan = StepPlan()
        self._drop_cancelled(plan)
        decoding = [r for r in self.running if r.computed == len(tokens_of(r)) - 1]
        for request in decoding:
            while request in self.running and not self._room_for(request, request.computed + 1):
                plan.preempted.append(self._preempt_latest())
        plan.decode = [r for r in decoding if r in self.running]
        self._admit(plan)
        budget = self.step_tokens if plan.decode else max(IDLE_STEP_TOKENS, self.step_tokens)
        decoding_now = {id(r) for r in plan.decode}
        coming: set[bytes] = set()  # prefix blocks that requests ahead are computing
        for request in self.running:
            if budget <= 0:
                break
            if id(request) in decoding_now or request.computed >= len(tokens_of(request)):
                continue
            if self._waits_for_prefix(request, coming, plan):
                continue
            budget = self._plan_chunks(request, budget, plan)
        return plan

    def computed(self, request: Sequence, end: int) -> None:
        """`request`'s positions up to `end` are now in the cache: offer its newly full blocks for reuse."""
        tokens = tokens_of(request)
        first_new = request.computed // self.block_size
        request.computed = end
        full = end // self.block_size
        if full > first_new:
            hashes = block_hashes(tokens[:full * self.block_size], self.block_size)
            for index in range(first_new, full):
                self.blocks.register(request.blocks[index], hashes[index])

    def finish(self, request: Sequence) -> None:
        """The request is done (or failed): its blocks go back (kept cached where computed)."""
        if request in self.running:
            self.running.remove(request)
        elif request in self.waiting:
            self.waiting.remove(request)
        self.blocks.release(request.blocks)
        request.blocks = []

    # -- internals ----------------------------------------------------------------------
    def _drop_cancelled(self, plan: StepPlan) -> None:
        for request in [r for r in (*self.waiting, *self.running) if r.is_cancelled()]:
            self.finish(request)
            plan.dropped.append(request)

    def _room_for(self, request: Sequence, positions: int) -> bool:
        """Make `request` hold blocks for `positions` positions; False when no block is left."""
        while len(request.blocks) * self.block_size < positions:
            if not self.blocks.available:
                return False
            request.blocks.append(self.blocks.allocate())
        return True

    def _plan_chunks(self, request: Sequence, budget: int, plan: StepPlan) -> int:
        """Queue `request`'s next prompt chunks (cut at multiples of `chunk_tokens`) within `budget`;
        the first may exceed it when no chunk is queued yet. With no row decoding (nobody waits
        for this step) its chunks run as one forward: fewer, larger products. Returns the budget
        left."""
        start, target = request.computed, len(tokens_of(request))
        while start < target and budget > 0:
            end = min(target, (start // self.chunk_tokens + 1) * self.chunk_tokens)
            if plan.prefill and end - start > budget:
                break
            last = plan.prefill[-1] if plan.prefill else None
            if not plan.decode and last is not None and last.request is request and last.end == start:
                last.end = end
            else:
                plan.prefill.append(Chunk(request, start, end))
            budget -= end - start
            start = end
        return budget

    def _waits_for_prefix(self, request: Sequence, coming: set[bytes], plan: StepPlan) -> bool:
        """Whether `request` should wait for blocks of its prompt that a request ahead of it is
        computing (the same system prompt sent by many clients at once is computed once), after
        taking what of its prompt became cached since it was admitted. Otherwise its own
        uncomputed blocks join `coming`."""
        if not request.reuse_prefix or request.computed % self.block_size:
            return False
        hashes = block_hashes(tokens_of(request)[:-1], self.block_size)
        self._take_cached(request, hashes, plan)
        first = request.computed // self.block_size
        if first < len(hashes) and hashes[first] in coming:
            return True
        coming.update(hashes[first:])
        return False

    def _take_cached(self, request: Sequence, hashes: list[bytes], plan: StepPlan) -> None:
        """Swap `request`'s uncomputed blocks for the cached ones of the same prefix, in order."""
        first = request.computed // self.block_size
        for index, cached in enumerate(self.blocks.match(hashes)[first:], start=first):
            self.blocks.hold(cached)
            self.blocks.release([request.blocks[index]])  # its own, uncomputed (never registered)
            request.blocks[index] = cached
            plan.cached_tokens += self.block_size
            request.computed = (index + 1) * self.block_size

    def _preempt_latest(self) -> Sequence:
        victim = self.running.pop()
        self.blocks.release(victim.blocks)
        victim.blocks, victim.computed = [], 0
        self.waiting.appendleft(victim)
        return victim

    def _admit(self, plan: StepPlan) -> None:
        while self.waiting and len(self.running) < self.max_batch:
            request = self.waiting[0]
            tokens = tokens_of(request)
            cached = []
            if request.reuse_prefix:  # whole blocks before the last token (its logits are needed)
                cached = self.blocks.match(block_hashes(tokens[:-1], self.block_size))
            needed = -(-len(tokens) // self.block_size) - len(cached)
            idle_taken = sum(1 for b in cached if self.blocks.refs[b] == 0)
            if self.blocks.available - idle_taken < needed:
                return  # first come, first served: later requests wait behind this one
            self.waiting.popleft()
            for block in cached:
                self.blocks.hold(block)
            request.blocks = cached + [self.blocks.allocate() for _ in range(needed)]
            request.computed = len(cached) * self.block_size
            self.running.append(request)
            plan.admitted.append(request)
            plan.cached_tokens += request.computed
