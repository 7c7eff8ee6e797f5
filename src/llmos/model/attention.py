"""Layer 2: multi-head (and grouped-query) attention through scaled_dot_product_attention.

softmax(Q K^T / sqrt(d_k)) V per head. Q, K and V come from one fused
projection; with n_kv_heads < n_heads each key/value head serves a group of
query heads. The mask builder turns causality, padding and an optional
sliding window into one boolean mask (True = may attend) for a pass that sees
only its own keys; a pass that reads a KV cache gets its mask from the cache
(`KVCache.attention_mask`). `AttentionContext` carries what every layer's
attention shares in one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from llmos.config import ModelConfig
from llmos.model.positions import apply_rope

if TYPE_CHECKING:
    from llmos.model.cache import KVCache

# SDPA shares key/value heads itself from torch 2.5 on; on 2.4 they are repeated first.
SDPA_SHARES_KV_HEADS = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)


@dataclass
class AttentionContext:
    """What every layer's attention needs in one forward pass.

    With a cache, each layer writes its keys and values at `cache_position`; `read_cache`
    says whether queries attend over the cache's keys (a step after the first) or only over
    this pass's own (a prompt's first pass, whose keys are all here: a cheaper, causal SDPA)."""

    rope: tuple[torch.Tensor, torch.Tensor] | None
    mask: torch.Tensor | None  # (B or 1, 1, T, S) bool, or None
    is_causal: bool
    cache: KVCache | None = None  # or any object with the same update / attend / attention_mask
    cache_position: torch.Tensor | None = None  # (T,) columns this pass writes
    read_cache: bool = False


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__()
        self.layer_index = layer_index
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.q_size = self.n_heads * self.head_dim
        self.kv_size = self.n_kv_heads * self.head_dim
        self.qkv = nn.Linear(config.d_model, self.q_size + 2 * self.kv_size, bias=config.qkv_bias)
        self.out = nn.Linear(self.q_size, config.d_model, bias=config.attn_out_bias)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:  # x (B, T, C)
        B, T, _ = x.shape
        qkv = self.qkv(x).view(B, T, self.n_heads + 2 * self.n_kv_heads, self.head_dim)
        qk, v = qkv.split([self.n_heads + self.n_kv_heads, self.n_kv_heads], dim=2)
        if ctx.rope is not None:  # queries and keys rotated together: one pass over (B, T, H + Hkv, D)
            qk = apply_rope(qk, *ctx.rope)
        q, k = qk.split([self.n_heads, self.n_kv_heads], dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H or Hkv, T, D)
        if ctx.cache is not None and ctx.read_cache:  # the cache knows how its keys are laid out
            y = ctx.cache.attend(self.layer_index, q, k, v, ctx.cache_position, ctx.mask)
        else:
            if ctx.cache is not None:
                ctx.cache.update(self.layer_index, k, v, ctx.cache_position)
            y = sdpa(q, k, v, ctx.mask, ctx.is_causal, self.dropout if self.training else 0.0)  # (B, H, T, D)
        return self.out(y.transpose(1, 2).reshape(B, T, self.q_size))


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, is_causal: bool,
         dropout: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v for q (B, H, T, D) over k, v (B, Hkv, S, D), Hkv dividing H."""
    grouped = {}
    if k.shape[1] != q.shape[1]:
        if SDPA_SHARES_KV_HEADS:
            grouped = {"enable_gqa": True}
        else:
            group = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal and mask is None,
                                          dropout_p=dropout, **grouped)


def build_attention_mask(
    attention_mask: torch.Tensor | None,  # (B, S) 1 = real token, 0 = padding; S = past + T
    batch_size: int,
    past: int,
    T: int,
    causal: bool,
    sliding_window: int | None,
    device: torch.device,
) -> tuple[torch.Tensor | None, bool]:
    """Return (mask, is_causal) for queries at columns [past, past + T) over keys [0, past + T).
    mask is None whenever SDPA's own flags suffice (fast path)."""
    S = past + T
    needs_window = sliding_window is not None and S > sliding_window
    if attention_mask is None and not needs_window:
        if not causal or T == 1:
            return None, False
        if past == 0:
            return None, True
    mask = torch.ones(batch_size, 1, T, S, dtype=torch.bool, device=device)
    if causal:
        query_pos = torch.arange(past, S, device=device)[:, None]
        key_pos = torch.arange(S, device=device)[None, :]
        allowed = key_pos <= query_pos
        if needs_window:
            allowed = allowed & (key_pos > query_pos - sliding_window)
        mask = mask & allowed
    if attention_mask is not None:
        if attention_mask.shape[-1] != S:
            raise ValueError(
                f"attention_mask covers {attention_mask.shape[-1]} positions; expected {S} "
                f"({past} cached + {T} new)"
            )
        mask = mask & attention_mask.bool()[:, None, None, :]
    # A query with nothing to attend to (a left-padding row) would give NaN: let it see everything.
    return mask | ~mask.any(dim=-1, keepdim=True), False
