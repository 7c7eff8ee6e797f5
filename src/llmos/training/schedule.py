"""Layer 6: the learning-rate schedule: linear warmup, then cosine decay to `min_lr`.

A pure function of the step, so resuming needs no scheduler state beyond the
step count itself.
"""

from __future__ import annotations

import math


def learning_rate(step: int, lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """The rate for optimizer step `step` (0-based).

    Steps 0..warmup-1 rise linearly to `lr` (step 0 already gets lr/warmup, never 0);
    then a half cosine falls from `lr` to `min_lr` at `max_steps`; after that, `min_lr`.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
