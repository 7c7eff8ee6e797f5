"""Layer 2b (kernels): `OneDNNLinear`, an nn.Linear whose matmuls run through oneDNN on CPU.

Training spends most of its time in the forward matmul of each linear and the
two backward ones (grad_input = grad_out @ W, grad_weight = grad_out^T @ x).
torch routes all three to MKL's sgemm, which takes a slow path on this
project's AMD Zen 3 CPU; oneDNN's inner product (`torch.ops.mkldnn._linear_pointwise`,
computing A @ B^T for a dense (rows, k) A and (n, k) B) runs the same products
1.5-3x faster there (see benchmarks/train_vs_transformers.py).
The backward:

    grad_input  = inner(grad_out, W^T)     (rows, out) x (in, out)^T, through oneDNN
    grad_weight = mm(grad_out^T, x)        (out, rows) x (rows, in), through MKL

oneDNN copies a transposed left operand into a dense one first (a strided
copy of the whole gradient, ~10% of a small GPT's step), while MKL's gemm
reads the transpose in place; for the weight gradient MKL was the faster of
the two at every shape measured on the 2-core Zen 3, 2 threads (768 rows x
128-512 features: 0.15-0.58 vs 0.22-0.70 ms; GPT-2's 2048 x 768-3072: 12-55
vs 14-65 ms). Results are float32 with MKL-like rounding (not bitwise equal to
F.linear, but deterministic run to run at a fixed thread count). Double backward is not
supported (nothing in LLMOS needs it).

Without autograd (inference) the forward is the same inner product on the
dense weight: no repacked copy, no extra memory. On this project's 2-core AMD
Zen 3 it beats MKL's sgemm 1.5-2.2x for every row count from prefill down to
a few decode rows (8 rows through all of GPT-2's matrices 19.6 vs 29.7 ms;
512-row prefill 450-470 vs 195-215 GFLOP/s). Where it does not win on another
machine, `llmos.kernels.choice` measures that once and the module falls back
to `F.linear` for those row counts. GPUs, half precision, autocast and
torch.compile always use `F.linear`.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn


def _has_onednn_linear() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


ONEDNN = _has_onednn_linear() and os.environ.get("LLMOS_ONEDNN_LINEAR", "1") != "0"


def inner_product(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a @ b^T (+ bias) through oneDNN; a is (rows, k), b is (n, k)."""
    return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x2: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x2, weight)
        ctx.has_bias = bias is not None
        return inner_product(x2, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x2, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = inner_product(grad_out, weight.t())
        if ctx.needs_input_grad[1]:
            grad_w = torch.mm(grad_out.t(), x2)  # MKL reads the transpose in place; oneDNN would copy it
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(0)
        return grad_x, grad_w, grad_b


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ weight^T + bias with autograd, for CPU float32 tensors; x is (..., in), weight (out, in)."""
    rows = x.numel() // x.shape[-1]
    x2 = x.reshape(rows, x.shape[-1]).contiguous()
    y = _OneDNNLinear.apply(x2, weight, bias)
    return y.view(*x.shape[:-1], weight.shape[0])


def usable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """oneDNN applies: CPU float32 operands, no autocast, not being traced by torch.compile."""
    return (ONEDNN and weight.device.type == "cpu" and weight.dtype == torch.float32
            and x.dtype == torch.float32 and x.numel() > 0 and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling())


class OneDNNLinear(nn.Linear):
    """nn.Linear with oneDNN matmuls; same parameters and state_dict keys as the layer it replaces.

    `few_rows_onednn`: whether inputs of at most `FEW_ROWS` rows (decoding) go to
    oneDNN too; `llmos.kernels.choice` measures which kernel wins on this machine."""

    FEW_ROWS = 16

    few_rows_onednn: bool = True

    @classmethod
    def from_linear(cls, layer: nn.Linear, few_rows_onednn: bool = True) -> OneDNNLinear:
        """A module sharing `layer`'s parameter objects (tied weights stay tied, nothing is copied)."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = layer.in_features, layer.out_features
        new.weight, new.bias = layer.weight, layer.bias
        new.few_rows_onednn = few_rows_onednn
        new.train(layer.training)  # a swap must not flip the model out of eval mode
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if not usable(x, weight):
            return F.linear(x, weight, self.bias)
        if torch.is_grad_enabled():
            return onednn_linear(x, weight, self.bias)
        rows = x.numel() // x.shape[-1]
        if rows <= self.FEW_ROWS and not self.few_rows_onednn:
            return F.linear(x, weight, self.bias)
        y = inner_product(x.reshape(rows, x.shape[-1]).contiguous(), weight, self.bias)
        return y.view(*x.shape[:-1], weight.shape[0])
