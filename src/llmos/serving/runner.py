"""Layer 7: the model runner: turns a step's rows and chunks into tensors and runs the forward passes.

A decode step feeds every decoding row's last token at its own position and
returns one row of logits each; it goes through the compiled step
(`llmos.generation.decode_step.run_step`), one graph for any number of rows
and any history length. A prefill chunk is one request's tokens
[start, end) after its cached positions; a step's chunks (one per request) run
together, eagerly, in one forward (many rows: the matmul-bound path). Both
write their keys and values into the pool's slots and read a row's history
through `PagedCache`. A request may ask for a LoRA
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
                        lengths=[(context_slots, 1)], rows=batch, scope=self.pool)

    @torch.no_grad()
    def prefill(self, chunks: list[Chunk]) -> list[torch.Tensor]:
        """Compute positions [start, end) of each chunk (one per request) in one forward per adapter
        asked for; per chunk its last position's logits (1, V), or every position's (T, V) when its
        request scores its prompt (`params.prompt_logprobs`). Shorter chunks are left-padded: padding
        tokens repeat the chunk's first position, write their keys to the pool's scratch slot and
        their outputs are dropped."""
        logits: list[torch.Tensor | None] = [None] * len(chunks)
        for adapter in dict.fromkeys(c.request.params.adapter for c in chunks):
            group = [i for i, c in enumerate(chunks) if c.request.params.adapter == adapter]
            with using_adapter(self.model, adapter) if self.has_adapters else nullcontext():
                for i, out in zip(group, self._prefill([chunks[i] for i in group]), strict=True):
                    logits[i] = out
        return logits

    def _prefill(self, chunks: list[Chunk]) -> list[torch.Tensor]:
        T = max(c.end - c.start for c in chunks)
        tokens, positions, slots, context = [], [], [], []
        for c in chunks:
            pad = T - (c.end - c.start)
            own = torch.arange(c.start, c.end, device=self.device)
            tokens.append([0] * pad + tokens_of(c.request)[c.start:c.end])
            positions.append(torch.cat([own[:1].expand(pad), own]))
            context.append(self._slots([c.request.blocks], torch.arange(c.end, device=self.device)[None])[0])
            slots.append(torch.cat([torch.full((pad,), self.pool.scratch_slot, device=self.device),
                                    context[-1][c.start:]]))
        width = max(len(row) for row in context)
        context_slots = torch.stack([torch.cat([row, row.new_zeros(width - len(row))]) for row in context])
        positions = torch.stack(positions)  # (B, T)
        cache = PagedCache(self.pool.k, self.pool.v, torch.cat(slots), context_slots)
        every = any(c.request.params.prompt_logprobs for c in chunks)
        out = self.model(torch.tensor(tokens, device=self.device), position_ids=positions, cache=cache,
                         cache_position=positions, logits_to_keep=T if every else 1).logits.float()
        if not every:
            return list(out)  # (1, V) each
        return [row[T - (c.end - c.start if c.request.params.prompt_logprobs else 1):]
                for row, c in zip(out, chunks, strict=True)]
