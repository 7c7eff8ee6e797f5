"""Layer 7: the model runner: turns a step's rows and chunks into tensors and runs the forward passes.

A decode step feeds every decoding row's last token at its own position and
returns one row of logits each; it goes through the compiled step
(`llmos.generation.decode_step.run_step`), one graph for any number of rows
and any history length. A prefill chunk is one request's tokens
[start, end) after its cached positions, run eagerly (many rows: the
matmul-bound path). Both write their keys and values into the pool's slots
and read a row's history through `PagedCache`. A request may ask for a LoRA
adapter the model holds (a tool-use adapter for requests with tools): its
rows get it, the others the base model, in the same batch
(`adapters.adapter_for_rows`; a row without it gets exactly the base output).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from llmos.adapters import adapter_for_rows, adapter_names, using_adapter
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
        self.has_adapters = bool(adapter_names(model))  # then each forward says which one is on

    def _slots(self, blocks: list[list[int]], positions: torch.Tensor) -> torch.Tensor:
        """Pool slots of `positions` (B, P) in each row's blocks."""
        width = max(len(b) for b in blocks)
        table = torch.tensor([b + [0] * (width - len(b)) for b in blocks], device=self.device)  # (B, blocks)
        size = self.pool.block_size
        return table.gather(1, positions // size) * size + positions % size

    @torch.no_grad()
    def decode(self, rows: list[Sequence]) -> torch.Tensor:
        """One token per row (each row's last, at position `computed`); (B, V) logits. Rows that ask for
        a LoRA adapter (`params.adapter`) get it and the others the base model, in one forward per
        adapter asked for (the rows without one join the first)."""
        names = sorted({r.params.adapter for r in rows} - {None})
        if not names:
            with using_adapter(self.model, None) if self.has_adapters else nullcontext():
                return self._decode(rows)
        logits: list[torch.Tensor | None] = [None] * len(rows)
        for i, name in enumerate(names):
            group = [j for j, r in enumerate(rows) if r.params.adapter == name or (i == 0 and r.params.adapter is None)]
            wants = torch.tensor([rows[j].params.adapter == name for j in group], device=self.device)
            with adapter_for_rows(self.model, name, wants):
                out = self._decode([rows[j] for j in group])
            for k, j in enumerate(group):
                logits[j] = out[k]
        return torch.stack(logits)

    def _decode(self, rows: list[Sequence]) -> torch.Tensor:
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
        adapter = chunk.request.params.adapter
        with using_adapter(self.model, adapter) if self.has_adapters else nullcontext():
            out = self.model(tokens, position_ids=positions, cache=cache, cache_position=positions,
                             logits_to_keep=T if every_position else 1)
        return out.logits[0].float()
