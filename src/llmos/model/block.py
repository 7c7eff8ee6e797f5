"""Layer 2: one Transformer block: attention and MLP sublayers with residuals, pre- or post-norm.

A sandwich-norm block (Gemma 2/3) also normalizes each sublayer's output before
adding it to the residual stream: x + norm(f(norm(x))), four norms a block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmos.config import ModelConfig
from llmos.model.attention import Attention, AttentionContext
from llmos.model.mlp import MLP
from llmos.model.norms import make_norm


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__()
        self.pre_norm = config.norm_placement == "pre"
        self.attn_norm = make_norm(config)
        self.attn = Attention(config, layer_index)
        self.mlp_norm = make_norm(config)
        self.mlp = MLP(config)
        if config.sandwich_norm:
            self.attn_out_norm = make_norm(config)
            self.mlp_out_norm = make_norm(config)
        else:
            self.attn_out_norm = self.mlp_out_norm = None
        self.dropout_p = config.dropout

    def dropout(self, x: torch.Tensor) -> torch.Tensor:
        # A function, not an nn.Dropout module: at p = 0 or in eval it costs nothing per call.
        return F.dropout(x, self.dropout_p, training=True) if self.training and self.dropout_p > 0 else x

    def forward(self, x: torch.Tensor, ctx: AttentionContext) -> torch.Tensor:
        if self.attn_out_norm is not None:  # x + norm(f(norm(x)))
            x = x + self.dropout(self.attn_out_norm(self.attn(self.attn_norm(x), ctx)))
            return x + self.dropout(self.mlp_out_norm(self.mlp(self.mlp_norm(x))))
        if self.pre_norm:  # x + f(norm(x))
            x = x + self.dropout(self.attn(self.attn_norm(x), ctx))
            return x + self.dropout(self.mlp(self.mlp_norm(x)))
        # post-norm, as in the original Transformer and BERT: norm(x + f(x))
        x = self.attn_norm(x + self.dropout(self.attn(x, ctx)))
        return self.mlp_norm(x + self.dropout(self.mlp(x)))
