"""Layer 2: normalization layers (LayerNorm with or without bias, RMSNorm, Gemma's RMSNorm with 1 + w)."""

from __future__ import annotations

import torch
from torch import nn

from llmos.config import ModelConfig


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight, computed in float32 as Llama does.

    Half precision is normalized in float32 and cast back before the weight, as
    Hugging Face's Llama does; float32 skips the two casts (a decode step of a
    30-layer model runs 60 norms per token, where every op counts).

    With `offset` (Gemma: 1.0) the scale is (offset + weight), applied in float32 before
    the cast back, as Gemma's RMSNorm does; the weight is stored as Hugging Face stores it."""

    def __init__(self, dim: int, eps: float = 1e-6, offset: float = 0.0) -> None:
        super().__init__()
        self.eps = eps
        self.offset = offset
        self.weight = nn.Parameter(torch.zeros(dim) if offset else torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.offset:
            normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
            return (normed * (self.offset + self.weight.float())).to(x.dtype)
        if x.dtype == torch.float32:
            return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def make_norm(config: ModelConfig, dim: int | None = None) -> nn.Module:
    """The config's norm over `dim` features (default d_model; q/k norms pass head_dim)."""
    dim = dim or config.d_model
    if config.norm == "rmsnorm":
        return RMSNorm(dim, config.norm_eps, config.norm_weight_offset)
    return nn.LayerNorm(dim, eps=config.norm_eps, bias=config.norm_bias)

