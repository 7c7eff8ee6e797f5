"""Layer 2: the key/value cache, preallocated once so decoding never reallocates.

Keys and values of every layer live in two tensors of shape
(n_layers, B, H_kv, max_len, D). `length` counts the positions filled; a
forward pass writes its new positions after them and the model advances
`length` once all layers have run.

`KVBuffer` is the part every cache shares: the two preallocated tensors and
`store`, the one write of a step's keys and values. `KVCache` (here, for
`generate`, beam search and scoring: all rows share one history length) and
the serving layer's `SlotCache` (rows are independent requests that join and
leave, right-aligned in a sliding window) are built on it and differ only in
where they write and which window they hand back to attention.
"""

from __future__ import annotations

import torch

from llmos.config import ModelConfig


class KVBuffer:
    """Keys and values of every layer: two (n_layers, rows, H_kv, max_len, D) tensors."""

    def __init__(
        self,
        config: ModelConfig,
        batch_size: int,
        max_len: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.max_len = max_len or config.max_seq_len
        shape = (config.n_layers, batch_size, config.n_kv_heads, self.max_len, config.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    @property
    def nbytes(self) -> int:
        """The memory the keys and values take."""
        return self.k.numel() * self.k.element_size() + self.v.numel() * self.v.element_size()

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor, at: int) -> int:
        """Write k, v (rows, H_kv, T, D) into the first `rows` rows at columns [at, at + T); return at + T."""
        end = at + k.shape[2]
        if end > self.max_len:
            raise ValueError(
                f"KV cache overflow: {end} positions requested, cache holds max_len={self.max_len}"
            )
        rows = k.shape[0]
        self.k[layer, :rows, :, at:end] = k
        self.v[layer, :rows, :, at:end] = v
        return end


class KVCache(KVBuffer):
    """A cache whose rows share one history length (generation, beam search, scoring)."""

    length: int = 0  # positions filled; `advance` sets it on the instance

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H_kv, T, D) after the filled positions; return all keys/values so far."""
        end = self.store(layer, k, v, self.length)
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` (beam search: follow each beam's parent)."""
        # In place and only over the filled positions: no reallocation of the whole cache.
        n = self.length
        self.k[:, :, :, :n] = self.k[:, :, :, :n].index_select(1, index)
        self.v[:, :, :, :n] = self.v[:, :, :, :n].index_select(1, index)
