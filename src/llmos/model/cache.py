"""Layer 2: the key/value cache, preallocated once so decoding never reallocates.

Shaped for the compiler, as gpt-fast's: every layer has its own fixed-size
key and value buffers, (B, H_kv, max_len, D), and a forward pass writes its new
keys and values at the columns given by a position tensor (`index_copy_`), so
a one-token step has the same shapes and the same code at every position. The
filled length is host-side bookkeeping (`length`, `advance`) for eager
callers; a compiled step never reads it: it passes the positions and a
padding mask as tensors and attends over the whole buffer, where columns not
yet written are masked out.

The buffers are separate tensors, not views of one stacked tensor: a
compiled graph that writes into a slice of a stacked input copies the whole
stack; into its own tensor, it writes in place.

`KVCache` serves `generate`, beam search and scoring: all rows share one
history length and one set of columns. The serving layer builds its own on
`KVBuffer` (rows are independent requests that join and leave) and differs
only in where it writes and which keys it hands back to attention.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from llmos.config import ModelConfig
from llmos.model.attention import sdpa


class KVBuffer:
    """Keys and values of every layer: `k[layer]`, `v[layer]`, each (rows, H_kv, max_len, D)."""

    def __init__(
        self,
        config: ModelConfig,
        batch_size: int,
        max_len: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.max_len = max_len or config.max_seq_len
        shape = (batch_size, config.n_kv_heads, self.max_len, config.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layers)]

    @property
    def nbytes(self) -> int:
        """The memory the keys and values take."""
        return sum(t.numel() * t.element_size() for t in (*self.k, *self.v))

    @property
    def batch_size(self) -> int:
        return self.k[0].shape[0]

    def copy_from(self, other: KVBuffer, rows: slice | int, columns: slice, other_rows: slice | int,
                  other_columns: slice) -> None:
        """Copy keys and values of `other` (rows, columns) into ours, layer by layer."""
        for mine, theirs in ((self.k, other.k), (self.v, other.v)):
            for layer, buffer in enumerate(mine):
                buffer[rows, :, columns] = theirs[layer][other_rows, :, other_columns]

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor, at: int) -> int:
        """Write k, v (rows, H_kv, T, D) into the first `rows` rows at columns [at, at + T); return at + T."""
        end = at + k.shape[2]
        if end > self.max_len:
            raise ValueError(
                f"KV cache overflow: {end} positions requested, cache holds max_len={self.max_len}"
            )
        rows = k.shape[0]
        self.k[layer][:rows, :, at:end] = k
        self.v[layer][:rows, :, at:end] = v
        return end


class KVCache(KVBuffer):
    """A cache whose rows share one history length (generation, beam search, scoring).

    `update` writes at `cache_position` (T,) and returns the whole buffer; `attention_mask`
    says which of its columns each query may see."""

    length: int = 0  # positions filled (host-side; `advance` sets it on the instance)

    @classmethod
    def over(cls, keys: list[torch.Tensor], values: list[torch.Tensor]) -> KVCache:
        """A cache over existing per-layer buffers (a compiled step's view of its inputs; no copy)."""
        cache = cls.__new__(cls)
        cache.k, cache.v, cache.max_len = keys, values, keys[0].shape[2]
        return cache

    def positions(self, T: int, device: torch.device) -> torch.Tensor:
        """The columns the next T tokens go to: (T,) from `length` on."""
        if self.length + T > self.max_len:
            raise ValueError(
                f"KV cache overflow: {self.length + T} positions requested, cache holds max_len={self.max_len}"
            )
        return torch.arange(self.length, self.length + T, device=device)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor,
               cache_position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H_kv, T, D) at columns `cache_position` (T,); return the layer's whole buffer."""
        self.k[layer].index_copy_(2, cache_position, k)
        self.v[layer].index_copy_(2, cache_position, v)
        return self.k[layer], self.v[layer]

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache_position: torch.Tensor,
               mask: torch.Tensor | None, attention: Callable[..., torch.Tensor] = sdpa, **scores) -> torch.Tensor:
        """Store this pass's k, v (B, H_kv, T, D) and attend q (B, H, T, D) over the whole buffer under `mask`
        with `attention` (the layer's: `sdpa` or a kernel with its arguments; `scores`: the layer's scale
        and cap)."""
        keys, values = self.update(layer, k, v, cache_position)
        return attention(q, keys, values, mask, is_causal=False, **scores)

    def attention_mask(self, cache_position: torch.Tensor, attention_mask: torch.Tensor | None,
                       sliding_window: int | None) -> torch.Tensor:
        """(B or 1, 1, T, max_len) bool: query t sees column s when s <= cache_position[t] (and within
        the window), and the padding mask (B, up to max_len columns; missing ones count as real) allows it."""
        return cached_attention_mask(cache_position, attention_mask, self.max_len, sliding_window)

    def advance(self, n: int) -> None:
        self.length += n

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` (beam search: follow each beam's parent)."""
        # In place and only over the filled positions: no reallocation of the whole cache.
        n = self.length
        for buffer in (*self.k, *self.v):
            buffer[:, :, :n] = buffer[:, :, :n].index_select(0, index)


def cached_attention_mask(cache_position: torch.Tensor, attention_mask: torch.Tensor | None, key_len: int,
                          sliding_window: int | None) -> torch.Tensor:
    """Which of `key_len` cached columns each query sees: causal by absolute column, the optional
    window, and the padding mask. Tensor ops only (no host sync), so it lives inside a compiled step."""
    key_pos = torch.arange(key_len, device=cache_position.device)  # (S,)
    query_pos = cache_position[:, None]  # (T, 1)
    allowed = key_pos[None, :] <= query_pos  # (T, S)
    if sliding_window is not None:
        allowed = allowed & (key_pos[None, :] > query_pos - sliding_window)
    mask = allowed[None, None]  # (1, 1, T, S)
    if attention_mask is not None:
        padding = attention_mask.bool()
        if padding.shape[-1] < key_len:  # columns after the given mask: not written yet, causality hides them
            padding = torch.nn.functional.pad(padding, (0, key_len - padding.shape[-1]), value=True)
        mask = mask & padding[:, None, None, :]
    # A query with nothing to attend to (a left-padding row) would give NaN: let it see everything.
    return mask | ~mask.any(dim=-1, keepdim=True)
