"""Layer 2: the position-wise feed-forward network: GELU (exact or tanh) or SwiGLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmos.config import ModelConfig


class MLP(nn.Module):
    """GELU: down(gelu(up(x))). SwiGLU: down(silu(gate(x)) * up(x)), gate and up fused in one matmul."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        self.approximate = "tanh" if config.mlp == "gelu_tanh" else "none"
        width = 2 * config.d_ff if self.swiglu else config.d_ff
        self.up = nn.Linear(config.d_model, width, bias=config.mlp_bias)  # swiglu: [gate; up]
        self.down = nn.Linear(config.d_ff, config.d_model, bias=config.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h, approximate=self.approximate)
        return self.down(h)
