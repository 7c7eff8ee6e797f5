"""Layer 6: the optimizer: AdamW with weight decay on matrices only.

Decay shrinks weights toward zero; that regularizes the matmul weights, but
for biases, norm gains and the like it only fights the fit, so parameters with
fewer than two dimensions get none (as in GPT-2 / nanoGPT practice).
Embeddings are matrices and are decayed. The step is torch's multi-tensor
(`foreach`) or fused kernel: one pass over all parameters instead of one per tensor.
"""

from __future__ import annotations

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split the (deduplicated: tied weights count once) trainable parameters by dimension."""
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
    fused: bool | None = None,
) -> torch.optim.AdamW:
    """AdamW over `parameter_groups`. fused=None picks the fused kernel where torch has one."""
    groups = parameter_groups(model, weight_decay)
    if fused is None:
        fused = _fused_supported(groups)
    kwargs = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **kwargs)


def _fused_supported(groups: list[dict]) -> bool:
    params = [p for g in groups for p in g["params"]]
    if not params:
        return False
    device = params[0].device.type
    return device in ("cpu", "cuda") and all(p.dtype.is_floating_point for p in params)
