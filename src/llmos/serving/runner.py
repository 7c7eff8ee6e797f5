"""Layer 7: the model runner: turns a step's rows and chunks into tensors and runs the forward passes.

A decode step feeds every decoding row's last token at its own position and
returns one row of logits each; it goes through the compiled step
(`llmos.generation.decode_step.run_step`), one graph for any number of rows
and any history length. A prefill chunk is one request's tokens
[start, end) after its cached positions, run eagerly (many rows: the
matmul-bound path). Both write their keys and values into the pool's slots
and read a row's history through `PagedCache`.
"""

from __future__ import annotations

from typing import Any

import torch

from llmos.generation.decode_step import run_step
from llmos.serving.kv_blocks import KVPool
from llmos.serving.paged_cache import PagedCache
from llmos.serving.scheduler import Chunk, Sequence, tokens_of


def _paged_step(model: Any, tokens: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor,
                context_slots: torch.Tensor, keys: list[torch.Tensor], values: list[torch.Tensor]) -> torch.Tensor:
    """The traced decode step: tokens (B, 1) at positions (B, 1); returns (B, V) float32 logits."""
    cache = PagedCache(keys, values, slots, context_slots)
    out = model(tokens, position_ids=positions, cache=cache, cache_position=positions, logits_to_keep=1)
    return out.logits[:, -1].float()


class Runner:
    def __init__(self, model: Any, pool: KVPool) -> None:
        self.model, self.pool = model, pool
        self.device = model.device

    def _slots(self, blocks: list[list[int]], positions: torch.Tensor) -> torch.Tensor:
        """Pool slots of `positions` (B, P) in each row's blocks."""
        width = max(len(b) for b in blocks)
        table = torch.tensor([b + [0] * (width - len(b)) for b in blocks], device=self.device)  # (B, blocks)
        size = self.pool.block_size
        return table.gather(1, positions // size) * size + positions % size

    @torch.no_grad()
    def decode(self, rows: list[Sequence]) -> torch.Tensor:
        """One token per row (each row's last, at position `computed`); (B, V) logits."""
        tokens = torch.tensor([[tokens_of(r)[-1]] for r in rows], device=self.device)
        positions = torch.tensor([[r.computed] for r in rows], device=self.device)  # (B, 1)
        history = int(positions.max()) + 1
        blocks = [r.blocks for r in rows]
        slots = self._slots(blocks, positions)[:, 0].contiguous()
        context_slots = self._slots(blocks, torch.arange(history, device=self.device).expand(len(rows), -1))
        batch = (tokens, positions, slots, context_slots) if len(rows) > 1 else ()
        return run_step(self.model, _paged_step,
                        (tokens, positions, slots, context_slots.contiguous(), self.pool.k, self.pool.v),
                        lengths=[(context_slots, 1)], rows=batch)

    @torch.no_grad()
    def prefill(self, chunk: Chunk, every_position: bool = False) -> torch.Tensor:
        """Compute positions [start, end) of one request; its last position's logits (1, V), or every
        position's (T, V) with `every_position`."""
        tokens = torch.tensor([tokens_of(chunk.request)[chunk.start:chunk.end]], device=self.device)
        positions = torch.arange(chunk.start, chunk.end, device=self.device)[None]  # (1, T)
        blocks = [chunk.request.blocks]
        slots = self._slots(blocks, positions)[0]
        context_slots = self._slots(blocks, torch.arange(chunk.end, device=self.device)[None])
        cache = PagedCache(self.pool.k, self.pool.v, slots, context_slots)
        T = chunk.end - chunk.start
        out = self.model(tokens, position_ids=positions, cache=cache, cache_position=positions,
                         logits_to_keep=T if every_position else 1)
        return out.logits[0].float()
