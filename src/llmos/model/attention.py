"""Layer 2: multi-head (and grouped-query) attention through scaled_dot_product_attention.

softmax(Q K^T / sqrt(d_k)) V per head. Q, K and V come from one fused
projection; with n_kv_heads < n_heads each key/value head serves a group of
query heads. The mask builder turns causality, padding and an optional
sliding window into one boolean mask (True = may attend) for a pass that sees
only its own keys; a pass that reads a KV cache gets its mask from the cache
(`KVCache.attention_mask`). `AttentionContext` carries what every layer's
attention shares in one forward pass: the masks and RoPE tables of global
layers and, where a model has them, of sliding-window layers (Gemma 3
interleaves both; each layer picks its own by `config.layer_window`).

Options a config turns on: per-head RMSNorm of queries and keys before RoPE
(Qwen3, Gemma 3), RoPE over the first `rotary_dim` dimensions only (Phi-4),
a query scale other than 1/sqrt(head_dim) (Gemma) and a tanh cap on the
scores (Gemma 2; then the scores are computed here, not in SDPA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from llmos.config import ModelConfig
from llmos.model.norms import make_norm
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
    local_rope: tuple[torch.Tensor, torch.Tensor] | None = None  # sliding-window layers' own, when they differ
    local_mask: torch.Tensor | None = None  # sliding-window layers' mask (the window applied)
    local_is_causal: bool = False


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
        self.local = config.layer_window(layer_index) is not None  # reads ctx.local_* (a windowed layer)
        self.rope_dim = config.rope_dim
        self.scale, self.softcap = config.attn_scale, config.attn_logit_softcap
        if config.qk_norm:
            self.q_norm = make_norm(config, self.head_dim)
            self.k_norm = make_norm(config, self.head_dim)
        else:
            self.q_norm = self.k_norm = None
        # What attends over a KV cache (few queries, many keys): SDPA here; llmos.kernels swaps in a
        # faster one on CPU (`use_cached_attention`). Same arguments and result as `sdpa`.
        self.cached_attention = sdpa

    def forward(self, x: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:  # x (B, T, C)
        B, T, _ = x.shape
        qkv = self.qkv(x).view(B, T, self.n_heads + 2 * self.n_kv_heads, self.head_dim)
        qk, v = qkv.split([self.n_heads + self.n_kv_heads, self.n_kv_heads], dim=2)
        if self.q_norm is not None:
            q, k = qk.split([self.n_heads, self.n_kv_heads], dim=2)
            qk = torch.cat([self.q_norm(q), self.k_norm(k)], dim=2)
        rope = ctx.local_rope if self.local and ctx.local_rope is not None else ctx.rope
        if rope is not None:  # queries and keys rotated together: one pass over (B, T, H + Hkv, D)
            if self.rope_dim == self.head_dim:
                qk = apply_rope(qk, *rope)
            else:  # partial rotary: the first rope_dim dimensions turn, the rest pass through
                turned, kept = qk.split([self.rope_dim, self.head_dim - self.rope_dim], dim=-1)
                qk = torch.cat([apply_rope(turned, *rope), kept], dim=-1)
        q, k = qk.split([self.n_heads, self.n_kv_heads], dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H or Hkv, T, D)
        mask, is_causal = (ctx.local_mask, ctx.local_is_causal) if self.local else (ctx.mask, ctx.is_causal)
        if ctx.cache is not None and ctx.read_cache:  # the cache knows how its keys are laid out
            y = ctx.cache.attend(self.layer_index, q, k, v, ctx.cache_position, mask,
                                 attention=self.cached_attention, **self._score_options())
        else:
            if ctx.cache is not None:
                ctx.cache.update(self.layer_index, k, v, ctx.cache_position)
            y = sdpa(q, k, v, mask, is_causal, self.dropout if self.training else 0.0,
                     **self._score_options())  # (B, H, T, D)
        return self.out(y.transpose(1, 2).reshape(B, T, self.q_size))

    def _score_options(self) -> dict:
        """The scale and cap of the scores, passed only when set (a cache's `attend` may not know them)."""
        options = {}
        if self.scale is not None:
            options["scale"] = self.scale
        if self.softcap is not None:
            options["softcap"] = self.softcap
        return options


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, is_causal: bool,
         dropout: float = 0.0, scale: float | None = None, softcap: float | None = None,
         slots: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T * scale) v for q (B, H, T, D) over k, v (B, Hkv, S, D), Hkv dividing H;
    scale defaults to 1/sqrt(D). With `softcap` the scores are capped (softcap * tanh(s / softcap))
    before the softmax, in plain math: SDPA has no such option. With `slots` (B, S), k and v are
    pools (N, Hkv, D) and row b's column s is pool row slots[b, s] (a paged cache)."""
    if slots is not None:
        k, v = k[slots].transpose(1, 2), v[slots].transpose(1, 2)  # (B, Hkv, S, D)
    grouped = {}
    if k.shape[1] != q.shape[1]:
        if SDPA_SHARES_KV_HEADS and softcap is None:
            grouped = {"enable_gqa": True}
        else:
            group = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    if softcap is not None:
        scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5 if scale is None else scale)
        scores = softcap * torch.tanh(scores / softcap)
        if mask is None and is_causal:
            T, S = q.shape[-2], k.shape[-2]
            mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = F.dropout(torch.softmax(scores.float(), dim=-1).to(q.dtype), dropout, training=dropout > 0)
        return weights @ v
    extra = {"scale": scale} if scale is not None else {}
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal and mask is None,
                                          dropout_p=dropout, **grouped, **extra)


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
