"""Layer 2b (kernels): `FusedLossHead`, an LM head whose cross-entropy never builds the full logits.

Training a causal LM spends a large share of a step around its output head:
the (tokens, vocabulary) logits are allocated (on CPU, large blocks come fresh
from the OS and page-fault on first touch), log-softmaxed, zero-filled and
scattered for the gradient, and the weight gradient needs that matrix
transposed. Measured on the training benchmark (GPT-2 shape, 2,048 tokens,
vocabulary 8,192): ~180 ms of a ~710 ms step.

Here the head runs over row chunks (~16 MB of logits each): each chunk's
logits give its part of the loss and, right away, its gradient (softmax -
one-hot), which is multiplied back into the hidden-state gradient (oneDNN's
inner product, see onednn.py) and into the weight gradient (MKL's addmm,
which reads the chunk's gradient transposed in place; 2 threads on the Zen 3:
33 vs 39 ms per 512-row chunk of GPT-2's head with a blocked transposed copy
fed to oneDNN, 0.08 vs 0.31 ms at a 65-token vocabulary). The gradients are kept for
backward, which only scales them by the incoming gradient. The result equals
`F.cross_entropy(F.linear(h, W, b), targets, ignore_index=-100)` (mean over
the targets that are not -100), up to float32 rounding; when every target is
ignored the loss is 0 (with zero gradients) instead of nan.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmos.kernels.onednn import ONEDNN, OneDNNLinear, inner_product
from llmos.model.heads import IGNORE_INDEX, mean_cross_entropy

CHUNK_ELEMENTS = 1 << 22  # logits per row chunk (16 MB in float32): stays in reused heap memory


class _HeadCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                targets: torch.Tensor) -> torch.Tensor:
        rows, vocab = h.shape[0], weight.shape[0]
        valid = targets != IGNORE_INDEX
        count = int(valid.sum())
        scale = 1.0 / max(count, 1)
        weight_t = weight.t().contiguous()  # (d, V): the right operand of grad_h = g @ W
        chunk = max(1, CHUNK_ELEMENTS // vocab)
        grad_h = torch.empty_like(h)
        train_weight = weight.requires_grad  # a frozen head (LoRA, layer freezing): no weight gradient
        grad_weight = torch.zeros_like(weight) if train_weight else torch.empty(0)
        grad_bias = torch.zeros(vocab, dtype=h.dtype) if bias is not None else None
        total = torch.zeros((), dtype=torch.float64)
        for start in range(0, rows, chunk):
            part = slice(start, min(start + chunk, rows))
            n = part.stop - start
            logits = inner_product(h[part], weight)
            if bias is not None:
                logits += bias
            keep = valid[part]
            target = targets[part].clamp(min=0)
            picked = logits.gather(1, target[:, None]).squeeze(1)
            peak = logits.amax(dim=-1)
            grad = logits.sub_(peak[:, None]).exp_()  # exp(logits - max), in place of the logits
            sums = grad.sum(dim=-1)
            total += ((peak + sums.log() - picked) * keep).sum(dtype=torch.float64)
            grad *= (keep * scale / sums)[:, None]  # softmax, zero on ignored rows, / count
            grad[torch.arange(n), target] -= keep * scale
            grad_h[part] = inner_product(grad, weight_t)
            if train_weight:
                grad_weight.addmm_(grad.t(), h[part])  # (V, n) x (n, d)
            if grad_bias is not None:
                grad_bias += grad.sum(0)
        ctx.save_for_backward(grad_h, grad_weight, grad_bias if grad_bias is not None else torch.empty(0))
        ctx.has_bias, ctx.train_weight = bias is not None, train_weight
        return (total * scale).to(h.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: torch.Tensor):
        grads = list(ctx.saved_tensors)
        if grad_loss.item() != 1.0:  # loss.backward() passes 1: nothing to scale
            grads = [g * grad_loss for g in grads]
        grad_h, grad_weight, grad_bias = grads
        return grad_h, grad_weight if ctx.train_weight else None, grad_bias if ctx.has_bias else None, None


def head_cross_entropy(h: torch.Tensor, layer: nn.Linear, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of `layer(h)` against `targets` (-100 = ignored) without keeping logits.

    h is (..., d), targets (...). The chunked oneDNN path is for CPU float32 with
    oneDNN available; anything else gets the plain computation."""
    weight, bias = layer.weight, layer.bias
    fast = (ONEDNN and h.device.type == "cpu" and h.dtype == torch.float32 and weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling())
    h2, flat_targets = h.reshape(-1, h.shape[-1]), targets.reshape(-1)
    if not fast:
        return mean_cross_entropy(F.linear(h2, weight, bias), flat_targets)
    return _HeadCrossEntropy.apply(h2.contiguous(), weight, bias, flat_targets)


class FusedLossHead(OneDNNLinear):
    """The LM head as a OneDNNLinear, plus `cross_entropy(h, targets)` computed chunk by chunk.

    `CausalLM.forward(targets=...)` calls `lm_head.cross_entropy` when the head has one."""

    def cross_entropy(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return head_cross_entropy(h, self, targets)
