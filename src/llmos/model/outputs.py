"""Layer 2: what the heads return, shaped like transformers' outputs so code written for it runs.

Each output is a dataclass with transformers' field names, in its field order.
As transformers' `ModelOutput`, it is also a read-only mapping of the fields
that are not None: `out.logits`, `out["logits"]`, `out[0]`, `loss, logits =
out[:2]`, `out.to_tuple()`, `dict(out)`; iterating gives the keys.
transformers is not imported: it is a test dependency, never a runtime one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch


class ModelOutput(Mapping):
    """Base of every output: the non-None dataclass fields, in field order, as keys."""

    def keys(self) -> list[str]:  # type: ignore[override]
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def to_tuple(self) -> tuple[Any, ...]:
        """The non-None fields' values, in field order."""
        return tuple(getattr(self, name) for name in self.keys())

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(f"{key!r} is not in this {type(self).__name__}; it holds {self.keys()}")
            return getattr(self, key)
        return self.to_tuple()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


@dataclass(eq=False)
class CausalLMOutput(ModelOutput):
    """transformers' CausalLMOutputWithPast, without the cache (ours is passed in and updated)."""

    loss: torch.Tensor | None = None  # () mean next-token cross-entropy
    logits: torch.Tensor | None = None  # (B, T, V); None when trained on `targets`


@dataclass(eq=False)
class MaskedLMOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # (B, T, V), or (masked tokens, V) with masked_only


@dataclass(eq=False)
class PreTrainingOutput(ModelOutput):
    """transformers' BertForPreTrainingOutput: masked LM + next-sentence prediction."""

    loss: torch.Tensor | None = None  # masked LM + NSP
    prediction_logits: torch.Tensor | None = None  # (B, T, V), or (masked tokens, V) with masked_only
    seq_relationship_logits: torch.Tensor | None = None  # (B, 2): is segment B the continuation of A


@dataclass(eq=False)
class SequenceClassifierOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # (B, num_labels)
