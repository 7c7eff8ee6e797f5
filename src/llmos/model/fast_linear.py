"""Layer 2: `linear(x, layer)`: an nn.Linear forward that picks a faster kernel for few rows.

Decoding multiplies one to a few dozen rows (tokens x beams x batch) by each
weight matrix. On this project's x86 CPUs, torch's default `F.linear` (x @ W.T)
takes a slow MKL path for some skinny shapes; computing the same product as
W @ x.T (then transposing back) avoids it: one GPT-2 124M decode step for 4
rows (beam search) went from 54 ms to 36 ms, single-threaded, with 1 and 8
rows unchanged. So without autograd, on CPU in float32, inputs of at most
FEW_ROWS rows take that route; everything else (training, long prefills, GPUs,
half precision) is plain `F.linear`. Parameters remain ordinary nn.Linear
modules. (NumPy's OpenBLAS was also tried: its own thread pool fights torch's
and made a step ~10x slower under load, so it is not used.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FEW_ROWS = 32


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    weight = layer.weight
    rows = x.numel() // x.shape[-1]
    if (
        rows > FEW_ROWS
        or torch.is_grad_enabled()
        or weight.device.type != "cpu"
        or weight.dtype != torch.float32
        or x.dtype != torch.float32
    ):
        return F.linear(x, weight, layer.bias)
    y = torch.mm(weight, x.reshape(rows, x.shape[-1]).t()).t().contiguous()  # (rows, out)
    if layer.bias is not None:
        y += layer.bias
    return y.view(*x.shape[:-1], weight.shape[0])
