"""Layer 6: which parameters a fine-tuning run trains: freeze the lower layers, or all but the adapters.

The seed's fine-tuning: most pretrained parameters stay fixed and only the last
layers are adjusted to the new task. `freeze_lower(model, n)` freezes the
embeddings and the lowest n blocks; `train_top(model, n)` is the same said the
other way round (everything but the top n blocks, the final norm and the head);
`top_blocks` names those blocks, for LoRA adapters on them alone (no backward
pass through the blocks below).
A task head the base model did not have (a classifier) is always trained.
"""

from __future__ import annotations

from torch import nn

from llmos.errors import LLMOSError


class FreezeError(LLMOSError):
    """A freeze depth does not fit the model."""


def check_depth(n_layers: int, freeze_layers: int = 0, train_top: int | None = None) -> None:
    """freeze_layers (0..n_layers) and train_top (None: not asked for; else 1..n_layers) against a model
    of n_layers blocks. A fine-tuning run checks them before it loads the model (and teach-tools before
    it generates its data), so a depth that does not fit is said before minutes of work."""
    if not 0 <= freeze_layers <= n_layers:
        raise FreezeError(f"freeze_layers={freeze_layers} does not fit a model of {n_layers} blocks; "
                          f"use 0..{n_layers} (or train_top)")
    if train_top is not None and not 1 <= train_top <= n_layers:
        raise FreezeError(f"train_top={train_top} does not fit a model of {n_layers} blocks; use 1..{n_layers}")


def freeze_lower(model: nn.Module, n_blocks: int) -> nn.Module:
    """Freeze the embeddings and blocks 0 .. n_blocks-1 (in place; returns `model`)."""
    check_depth(len(model.transformer.blocks), freeze_layers=n_blocks)
    for p in model.transformer.embed.parameters():
        p.requires_grad_(False)
    for block in model.transformer.blocks[:n_blocks]:
        for p in block.parameters():
            p.requires_grad_(False)
    _keep_untied_head_trainable(model)
    return model


def train_top(model: nn.Module, n_blocks: int) -> nn.Module:
    """Train only the top n_blocks blocks, the final norm and the head."""
    return freeze_lower(model, len(model.transformer.blocks) - len(top_blocks(model, n_blocks)))


def top_blocks(model: nn.Module, n_blocks: int) -> tuple[str, ...]:
    """The module-name prefixes of the top n_blocks blocks ("transformer.blocks.i.")."""
    n_layers = len(model.transformer.blocks)
    check_depth(n_layers, train_top=n_blocks)
    return tuple(f"transformer.blocks.{i}." for i in range(n_layers - n_blocks, n_layers))


def freeze_all_but(model: nn.Module, keep: tuple[str, ...]) -> nn.Module:
    """Freeze every parameter whose qualified name has none of the `keep` parts (LoRA: '.adapters.')."""
    for name, p in model.named_parameters():
        p.requires_grad_(any(part in name for part in keep))
    return model


def _keep_untied_head_trainable(model: nn.Module) -> None:
    """A tied LM head is the embedding table: frozen with it. An untied head stays trainable."""
    embedding = model.transformer.embed.tokens.weight
    for name, p in model.named_parameters():
        if not name.startswith("transformer.") and p is not embedding:
            p.requires_grad_(True)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total), tied parameters counted once."""
    unique = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in unique if p.requires_grad), sum(p.numel() for p in unique)
