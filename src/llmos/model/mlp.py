"""Layer 2: the position-wise feed-forward network: GELU (exact or tanh), SwiGLU or GeGLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmos.config import ModelConfig


class MLP(nn.Module):
    """GELU: down(gelu(up(x))). SwiGLU: down(silu(gate(x)) * up(x)), gate and up fused in one matmul.
    GeGLU (Gemma): the same with gelu_tanh(gate)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gated = config.mlp in ("swiglu", "geglu")
        self.approximate = "tanh" if config.mlp in ("gelu_tanh", "geglu") else "none"
        width = 2 * config.d_ff if self.gated else config.d_ff
        self.up = nn.Linear(config.d_model, width, bias=config.mlp_bias)  # gated: [gate; up]
        self.down = nn.Linear(config.d_ff, config.d_model, bias=config.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            act = F.silu(gate) if self.approximate == "none" else F.gelu(gate, approximate="tanh")
            h = act * up
        else:
            h = F.gelu(h, approximate=self.approximate)
        return self.down(h)
