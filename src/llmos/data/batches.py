"""Layer 6 (data): causal-LM batches from token shards, resumable to the exact batch.

``CausalBatches`` cuts the split into windows of ``context + 1`` tokens that
start every ``context`` tokens (after a per-epoch shift in ``[0, context)``, so
later epochs see other cut points), visits them in a seeded permutation per
epoch and yields ``(x, y)`` with ``y`` = ``x`` shifted by one. Its whole
position is ``(epoch, index)``: ``state_dict()`` saved with a checkpoint and
``load_state_dict()`` in a fresh process continue with exactly the batches an
uninterrupted run would have drawn, none repeated. Data-parallel ranks share
the permutation and each take their own slice of every global batch.

``eval_batches`` gives a fixed, evenly spread set of validation batches, the
same for every call, so validation losses are comparable across a run.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from llmos.data.shards import TokenShards
from llmos.errors import LLMOSError


def _check_sizes(shards: TokenShards, batch_size: int, context: int) -> None:
    if batch_size < 1:
        raise LLMOSError(f"batch_size must be >= 1, got {batch_size}")
    if context < 1:
        raise LLMOSError(f"context must be >= 1, got {context}")
    if shards.num_tokens < context + 1:
        raise LLMOSError(
            f"the {shards.split} split of {shards.data_dir} holds {shards.num_tokens} tokens, "
            f"fewer than context + 1 = {context + 1}; use a shorter context or more data"
        )


def _stack(shards: TokenShards, starts: np.ndarray, length: int) -> tuple[torch.Tensor, ...]:
    rows = np.stack([shards.window(int(s), length) for s in starts])  # (B, context + 1)
    tokens = torch.from_numpy(rows)
    return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


class DataPosition:
    """The resumable position shared by the batch iterators: (epoch, index) into a seeded
    per-epoch order, saved with the settings it is only meaningful with."""

    def positions_in_epoch(self, epoch: int) -> int:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "index": self.index,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "context": self.context,
            "world_size": self.world_size,
            "num_tokens": self.shards.num_tokens,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved position; refuses one taken with other data or context."""
        for key in ("seed", "context", "num_tokens"):
            mine = self.state_dict()[key]
            if key in state and state[key] != mine:
                raise LLMOSError(
                    f"cannot resume data position: saved {key}={state[key]} but this "
                    f"iterator has {key}={mine}"
                )
        epoch, index = int(state["epoch"]), int(state["index"])
        if epoch < 0 or not 0 <= index <= self.positions_in_epoch(epoch):
            raise LLMOSError(f"invalid data position epoch={epoch}, index={index}")
        self.epoch, self.index = epoch, index
        if self.index == self.positions_in_epoch(epoch):
            self.epoch, self.index = epoch + 1, 0


class CausalBatches(DataPosition):
    """Infinite, deterministic ``(x, y)`` LongTensor batches of shape (batch_size, context)."""

    def __init__(
        self,
        shards: TokenShards,
        batch_size: int,
        context: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        _check_sizes(shards, batch_size, context)
        if not 0 <= rank < world_size:
            raise LLMOSError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.shards = shards
        self.batch_size = batch_size
        self.context = context
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.index = 0  # position in this epoch's permutation
        self._plan_epoch: int | None = None
        self._shift = 0
        self._order = np.zeros(0, dtype=np.int64)

    def _plan(self, epoch: int) -> tuple[int, np.ndarray]:
        """(shift, window order) of an epoch, cached for the current one."""
        if self._plan_epoch != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            max_shift = min(self.context - 1, self.shards.num_tokens - 1 - self.context)
            self._shift = int(rng.integers(0, max_shift + 1))
            n_windows = (self.shards.num_tokens - 1 - self._shift) // self.context
            self._order = rng.permutation(n_windows)
            self._plan_epoch = epoch
        return self._shift, self._order

    def positions_in_epoch(self, epoch: int) -> int:
        return self.windows_per_epoch(epoch)

    def windows_per_epoch(self, epoch: int | None = None) -> int:
        """How many windows epoch ``epoch`` (default: the current one) visits."""
        return len(self._plan(self.epoch if epoch is None else epoch)[1])

    def _take(self, count: int) -> np.ndarray:
        """The next ``count`` window starts, moving into the next epoch as needed."""
        starts: list[np.ndarray] = []
        while count:
            shift, order = self._plan(self.epoch)
            take = min(count, len(order) - self.index)
            starts.append(shift + order[self.index : self.index + take] * self.context)
            self.index += take
            count -= take
            if self.index == len(order):
                self.epoch, self.index = self.epoch + 1, 0
        return np.concatenate(starts)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = self._take(self.batch_size * self.world_size)
        mine = starts[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return _stack(self.shards, mine, self.context + 1)


def eval_batches(
    shards: TokenShards, batch_size: int, context: int, n_batches: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed list of ``n_batches`` ``(x, y)`` batches spread evenly over the split."""
    _check_sizes(shards, batch_size, context)
    if n_batches < 1:
        raise LLMOSError(f"n_batches must be >= 1, got {n_batches}")
    last_start = shards.num_tokens - (context + 1)
    n_windows = batch_size * n_batches
    # Non-overlapping windows when the split is big enough; evenly spread (overlapping) otherwise.
    starts = np.linspace(0, last_start, n_windows).round().astype(np.int64)
    return [
        _stack(shards, starts[b * batch_size : (b + 1) * batch_size], context + 1)
        for b in range(n_batches)
    ]
