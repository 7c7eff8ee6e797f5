"""Layer 6: training objectives, kept apart from the loop that runs them.

An objective knows what a batch looks like, how to turn it into a loss, how
to split it across data-parallel processes, and which metrics an evaluation
reports. The trainer knows none of that, so fine-tuning (frozen layers, LoRA,
instruction tuning, classification) can reuse the same loop with another
objective.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100

Batch = Any  # a (x, y) tuple for causal LM, a dict of tensors for MLM + NSP


class Objective(Protocol):
    name: str

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor: ...

    def num_tokens(self, batch: Batch) -> int: ...

    def evaluate(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, float]: ...


def to_device(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, dict):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return type(batch)(t.to(device, non_blocking=True) for t in batch)


def shard_batch(batch: Batch, rank: int, world_size: int) -> Batch:
    """This process's contiguous slice of a global batch (equal slices, so the mean of the
    per-process mean losses is the global mean loss)."""
    if world_size == 1:
        return batch
    if isinstance(batch, dict):
        return {k: v.chunk(world_size)[rank] for k, v in batch.items()}
    return type(batch)(t.chunk(world_size)[rank] for t in batch)


class CausalLMObjective:
    """Next-token prediction on (x, y) batches, y = x shifted by one: mean cross-entropy.

    Evaluation reports validation loss and perplexity = exp(loss).
    """

    name = "causal"

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        logits = model(x).logits  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                               ignore_index=IGNORE_INDEX)

    def num_tokens(self, batch: Batch) -> int:
        return batch[0].numel()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, float]:
        total, count = 0.0, 0
        for batch in batches:
            x, y = batch
            logits = model(x).logits
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                     ignore_index=IGNORE_INDEX, reduction="sum").item()
            count += int((y != IGNORE_INDEX).sum())
        if count == 0:
            raise ValueError("evaluation saw no target tokens")
        loss = total / count
        return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0))}


class MLMNSPObjective:
    """BERT pretraining: masked-token prediction + next-sentence prediction, loss = MLM + NSP.

    Batches are dicts with input_ids, token_type_ids, attention_mask, labels
    (original ids at masked positions, -100 elsewhere) and next_sentence_label.
    Evaluation reports the summed loss, both parts, masked-token accuracy and NSP accuracy.
    """

    name = "mlm_nsp"

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(**batch).loss

    def num_tokens(self, batch: Batch) -> int:
        return int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, float]:
        mlm_loss = mlm_correct = mlm_count = 0.0
        nsp_loss = nsp_correct = nsp_count = 0.0
        for batch in batches:
            out = model(**{k: v for k, v in batch.items() if k not in ("labels", "next_sentence_label")})
            labels, nsp_labels = batch["labels"], batch["next_sentence_label"].reshape(-1)
            masked = labels != IGNORE_INDEX
            logits = out.logits[masked].float()
            mlm_loss += F.cross_entropy(logits, labels[masked], reduction="sum").item()
            mlm_correct += (logits.argmax(-1) == labels[masked]).sum().item()
            mlm_count += masked.sum().item()
            nsp_logits = out.nsp_logits.float()
            nsp_loss += F.cross_entropy(nsp_logits, nsp_labels, reduction="sum").item()
            nsp_correct += (nsp_logits.argmax(-1) == nsp_labels).sum().item()
            nsp_count += nsp_labels.numel()
        if mlm_count == 0 or nsp_count == 0:
            raise ValueError("evaluation saw no masked tokens or no sentence pairs")
        mlm, nsp = mlm_loss / mlm_count, nsp_loss / nsp_count
        return {
            "val_loss": mlm + nsp,
            "val_mlm_loss": mlm,
            "val_nsp_loss": nsp,
            "val_perplexity": math.exp(min(mlm, 50.0)),
            "val_mlm_accuracy": mlm_correct / mlm_count,
            "val_nsp_accuracy": nsp_correct / nsp_count,
        }


def objective_for(name: str) -> Objective:
    objectives = {"causal": CausalLMObjective, "mlm_nsp": MLMNSPObjective}
    if name not in objectives:
        from llmos.errors import LLMOSError

        raise LLMOSError(f"unknown objective {name!r}; expected one of {sorted(objectives)}")
    return objectives[name]()
