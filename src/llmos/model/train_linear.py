"""Layer 2: `onednn_linear(x, weight, bias)`: a differentiable linear whose three matmuls use oneDNN.

Training spends most of its time in the forward matmul of each linear and the
two backward ones (grad_input = grad_out @ W, grad_weight = grad_out^T @ x).
torch routes all three to MKL's sgemm, which takes a slow path on this
project's AMD Zen 3 CPU; oneDNN's inner product (`torch.ops.mkldnn._linear_pointwise`,
computing A @ B^T for a dense (rows, k) A and (n, k) B) runs the same products
1.5-3x faster there (see benchmarks/train_vs_transformers.py).
The backward passes transposed *views* as the inner product's operands:

    grad_input  = inner(grad_out, W^T)     (rows, out) x (in, out)^T
    grad_weight = inner(grad_out^T, x^T)   (out, rows) x (in, rows)^T

oneDNN reads the strides itself, so no transposed copies are made. Results
are float32 with MKL-like rounding (not bitwise equal to F.linear, but
deterministic run to run at a fixed thread count). Double backward is not
supported (nothing in LLMOS needs it).
"""

from __future__ import annotations

import torch


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
            grad_w = inner_product(grad_out.t(), x2.t())
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(0)
        return grad_x, grad_w, grad_b


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ weight^T + bias with autograd, for CPU float32 tensors; x is (..., in), weight (out, in)."""
    rows = x.numel() // x.shape[-1]
    x2 = x.reshape(rows, x.shape[-1]).contiguous()
    y = _OneDNNLinear.apply(x2, weight, bias)
    return y.view(*x.shape[:-1], weight.shape[0])
