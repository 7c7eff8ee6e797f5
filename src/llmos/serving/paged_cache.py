"""Layer 7: one forward pass's view of the KV pools, speaking the model's cache protocol.

The model asks its cache to `update` (store this pass's keys and values) and
to `attend` (attention over everything a row may see). Here a row's history
is scattered over the pool's blocks: `slots` says where each new token of the
pass goes (block * block_size + offset, one per token, row after row) and
`context_slots` (B, S) where each of a row's first S positions lives (slots
past a row's length are padding, hidden by the mask). Attention reads a row's
keys and values through those slots (SDPA gathers them first; the C++ kernel
reads the pools in place) under a causal mask by absolute position, so a
decode step (T = 1) and a prefill chunk (T tokens after a cached or
earlier-computed prefix) are the same code.

Everything is a tensor argument (no host-side state is read), so the decode
step over a batch of rows compiles into one graph, dynamic in the row count
and the longest history.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from llmos.model.attention import sdpa


class PagedCache:
    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], slots: torch.Tensor,
                 context_slots: torch.Tensor, sliding_window: int | None = None) -> None:
        self.k, self.v = keys, values  # per layer: (num_blocks, block_size, H_kv, D)
        self.slots = slots  # (N,) where this pass's N = B * T tokens go
        self.context_slots = context_slots  # (B, S) where each row's positions 0..S-1 live
        self.sliding_window = sliding_window

    def _flat(self, pool: torch.Tensor) -> torch.Tensor:
        return pool.view(-1, pool.shape[2], pool.shape[3])  # (num_blocks * block_size, H_kv, D)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, cache_position: torch.Tensor) -> None:
        """Store k, v (B, H_kv, T, D) at this pass's slots."""
        B, H, T, D = k.shape
        self._flat(self.k[layer]).index_copy_(0, self.slots, k.transpose(1, 2).reshape(B * T, H, D))
        self._flat(self.v[layer]).index_copy_(0, self.slots, v.transpose(1, 2).reshape(B * T, H, D))

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache_position: torch.Tensor,
               mask: torch.Tensor, attention: Callable[..., torch.Tensor] = sdpa, **scores) -> torch.Tensor:
        """Store k, v, then attend q (B, H, T, D) over each row's S positions (the pools through
        `context_slots`) under `mask` (the layer's own: sliding-window layers get a windowed one) with
        `attention` (the layer's: `sdpa` or a kernel with its arguments; `scores`: its scale and cap)."""
        self.update(layer, k, v, cache_position)
        return attention(q, self._flat(self.k[layer]), self._flat(self.v[layer]), mask, is_causal=False,
                         slots=self.context_slots, **scores)

    def attention_mask(self, cache_position: torch.Tensor, attention_mask: torch.Tensor | None,
                       sliding_window: int | None) -> torch.Tensor:
        """(B, 1, T, S): query at absolute position p sees positions <= p (and within the window)."""
        key_pos = torch.arange(self.context_slots.shape[1], device=cache_position.device)  # (S,)
        query_pos = cache_position[:, :, None]  # (B, T, 1)
        allowed = key_pos <= query_pos
        if sliding_window is not None:
            allowed = allowed & (key_pos > query_pos - sliding_window)
        return allowed[:, None]
