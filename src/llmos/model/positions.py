"""Layer 2: position information: sinusoidal tables, learned tables' helpers, rotary (RoPE).

Rotary embeddings use the "rotate half" layout of Hugging Face Llama checkpoints,
so their q/k projection weights load unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from llmos.config import ModelConfig


def sinusoidal_table(n_positions: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(...); (n_positions, d_model)."""
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    div = torch.pow(10000.0, torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(n_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos / div)
    table[:, 1::2] = torch.cos(pos / div)
    return table.float()


def rope_inverse_frequencies(config: ModelConfig, theta: float | None = None,
                             scaling: dict | None | bool = True) -> torch.Tensor:
    """theta^(-2i/d) per rotary pair (d = the rotating dimensions), with the config's frequency scaling
    (linear, Llama 3, or llama.cpp's per-frequency factors). `theta` and `scaling` override the
    config's (Gemma 3's sliding-window layers: their own base, no scaling). LongRoPE's factors
    depend on the position: see `RotaryEmbedding`."""
    dim = config.rope_dim
    theta = config.rope_theta if theta is None else theta
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    scaling = config.rope_scaling if scaling is True else scaling
    if not scaling:
        return inv_freq
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "frequency_factors":
        return inv_freq / torch.tensor(scaling["factors"], dtype=torch.float32)
    if kind in ("longrope", "su"):
        return inv_freq  # the factors come per position (RotaryEmbedding)
    factor = float(scaling["factor"])
    if kind == "linear":
        return inv_freq / factor
    # Llama 3.1: leave high frequencies alone, divide low ones by `factor`, blend between.
    low = float(scaling.get("low_freq_factor", 1.0))
    high = float(scaling.get("high_freq_factor", 4.0))
    old_len = float(scaling.get("original_max_position_embeddings", 8192))
    low_wavelen, high_wavelen = old_len / low, old_len / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled)


def longrope_angles(config: ModelConfig, positions: torch.Tensor, theta: float) -> tuple[torch.Tensor, float]:
    """Angles (T, d/2) and the cos/sin multiplier of LongRoPE (Phi-3 "su"/"longrope").

    transformers divides the frequencies by `short_factor` while a pass's positions stay within
    `original_max_position_embeddings`, by `long_factor` past it. Per position here: a token at
    position p < original gets the short factors, one at or past it the long ones; the same as
    transformers' for every pass that stays within the original length and for each step of a
    decode that grows past it (its earlier keys were cached with the short ones), different only
    for a single pass longer than the original length (transformers then rotates all of it long)."""
    scaling = config.rope_scaling
    dim = config.rope_dim
    base = theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)
    original = int(scaling["original_max_position_embeddings"])
    short = 1.0 / (torch.tensor(scaling["short_factor"], dtype=torch.float32) * base)
    long = 1.0 / (torch.tensor(scaling["long_factor"], dtype=torch.float32) * base)
    inv_freq = torch.where(positions[:, None] < original, short, long)  # (T, d/2)
    attention_factor = scaling.get("attention_factor")
    if attention_factor is None:
        factor = scaling.get("factor") or config.max_seq_len / original
        attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    return positions[:, None] * inv_freq, float(attention_factor)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for every position up to max_seq_len, looked up by position id.

    The sin table is stored with the sign of `rotate_half` folded in ([-sin, sin] over
    the two halves), so applying RoPE is x * cos + swap_halves(x) * signed_sin. `local`
    builds the table of sliding-window layers (`local_rope_theta`, no scaling)."""

    def __init__(self, config: ModelConfig, local: bool = False) -> None:
        super().__init__()
        self.config = config
        self.local = local
        self.init_buffers()

    def init_buffers(self) -> None:
        """(Re)compute the tables from the config: they are derived, not saved, so a model built on
        the meta device gets them here after its weights are loaded."""
        config = self.config
        t = torch.arange(config.max_seq_len, dtype=torch.float32)
        multiplier = 1.0
        scaling = config.rope_scaling or {}
        if self.local:
            freqs = torch.outer(t, rope_inverse_frequencies(config, config.local_rope_theta, scaling=None))
        elif scaling.get("rope_type", scaling.get("type")) in ("longrope", "su"):
            freqs, multiplier = longrope_angles(config, t, config.rope_theta)
        else:
            freqs = torch.outer(t, rope_inverse_frequencies(config))  # (T, D/2)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.register_buffer("cos", emb.cos() * multiplier, persistent=False)  # (T, D)
        self.register_buffer("signed_sin", torch.cat([-freqs.sin(), freqs.sin()], dim=-1) * multiplier,
                             persistent=False)

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        # position_ids (B, T) -> cos, signed_sin (B, T, 1, D), broadcast over heads
        return (self.cos[position_ids].unsqueeze(2).to(dtype),
                self.signed_sin[position_ids].unsqueeze(2).to(dtype))


def apply_rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotate vectors x (B, T, heads, D) by their positions' angles, in Hugging Face's "rotate half"
    layout: x * cos + rotate_half(x) * sin, where rotate_half(x) = [-x2, x1] is the halves
    swapped (`roll` by D/2) times the sign that `signed_sin` carries."""
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), signed_sin)
