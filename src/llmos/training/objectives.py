"""Layer 6: training objectives, kept apart from the loop that runs them.

An objective knows what a batch looks like, how to turn it into a loss, how
to split it across data-parallel processes, and which metrics an evaluation
reports. The trainer knows none of that, so fine-tuning (frozen layers, LoRA,
instruction tuning, classification) can reuse the same loop with another
objective.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from llmos.adapters import using_adapter
from llmos.model.heads import IGNORE_INDEX

Batch = Any  # a (x, y) tuple for causal LM, a dict of tensors for MLM + NSP


SumAcross = Callable[[torch.Tensor], torch.Tensor]


class Objective(Protocol):
    name: str
    head_fraction: float  # the share of tokens the output head runs on (for MFU's FLOP count)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor: ...

    def num_tokens(self, batch: Batch) -> int: ...

    def evaluate(self, model: nn.Module, batches: Iterable[Batch],
                 sum_across: SumAcross | None = None) -> dict[str, float]:
        """Metrics over `batches`. Under data parallelism each process evaluates its slice
        and `sum_across` adds the raw totals of all processes before any ratio is taken,
        so the metrics are those of the whole validation set."""
        ...


def _summed(totals: list[float], sum_across: SumAcross | None) -> list[float]:
    values = torch.tensor(totals, dtype=torch.float64)
    return (sum_across(values) if sum_across is not None else values).tolist()


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
    head_fraction = 1.0  # the LM head runs on every token

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        return model(x, targets=y).loss  # head + cross-entropy fused, no (B, T, V) logits kept

    def num_tokens(self, batch: Batch) -> int:
        return batch[0].numel()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Batch],
                 sum_across: SumAcross | None = None) -> dict[str, float]:
        total, count = 0.0, 0
        for batch in batches:
            x, y = batch
            logits = model(x).logits
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                     ignore_index=IGNORE_INDEX, reduction="sum").item()
            count += int((y != IGNORE_INDEX).sum())
        total, count = _summed([total, count], sum_across)
        if count == 0:
            raise ValueError("evaluation saw no target tokens")
        loss = total / count
        return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0))}


class DistilledCausalLMObjective(CausalLMObjective):
    """Causal fine-tuning of an adapter where the rows marked `distill` learn the base model's
    next-token distribution instead of their tokens: KL(base || tuned) at their trained positions,
    the base being the same model with its adapter switched off. An adapter taught a narrow task
    this way keeps the base model's chat, where hard targets (even the base model's own greedy
    replies) would sharpen it away from it.

    Batches are (x, y, distill (B,) bool); the loss is the mean over every trained token of its
    cross-entropy (other rows) or its KL (distilled rows). Evaluation is the causal one."""

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y, distill = batch
        hard = ~distill
        hard_tokens = int((y[hard] != IGNORE_INDEX).sum())
        total = torch.zeros((), device=x.device)
        if hard_tokens:
            total = model(x[hard], targets=y[hard]).loss * hard_tokens
        soft_tokens = 0
        if bool(distill.any()):
            x, y = x[distill], y[distill]
            trained = y != IGNORE_INDEX
            width = int(trained.any(0).nonzero().max()) + 1  # no logits for the padding after the last target
            x, trained = x[:, :width], trained[:, :width]
            with torch.no_grad(), using_adapter(model, None):
                base = model(x).logits[trained].float().log_softmax(-1)
            tuned = model(x).logits[trained].float().log_softmax(-1)
            total = total + F.kl_div(tuned, base, log_target=True, reduction="sum")
            soft_tokens = int(trained.sum())
        return total / max(hard_tokens + soft_tokens, 1)


class MLMNSPObjective:
    """BERT pretraining: masked-token prediction + next-sentence prediction, loss = MLM + NSP.

    Batches are dicts with input_ids, token_type_ids, attention_mask, labels
    (original ids at masked positions, -100 elsewhere) and next_sentence_label.
    Evaluation reports the summed loss, both parts, masked-token accuracy and NSP accuracy.
    """

    name = "mlm_nsp"

    def __init__(self, mlm_probability: float = 0.15) -> None:
        self.head_fraction = mlm_probability  # the prediction head runs on the masked tokens only

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(**batch, masked_only=True).loss

    def num_tokens(self, batch: Batch) -> int:
        return int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Batch],
                 sum_across: SumAcross | None = None) -> dict[str, float]:
        mlm_loss = mlm_correct = mlm_count = 0.0
        nsp_loss = nsp_correct = nsp_count = 0.0
        for batch in batches:
            inputs = {k: v for k, v in batch.items() if k != "next_sentence_label"}
            out = model(**inputs, masked_only=True)  # logits of the masked positions only
            labels = batch["labels"][batch["labels"] != IGNORE_INDEX]
            nsp_labels = batch["next_sentence_label"].reshape(-1)
            logits = out.prediction_logits.float()
            mlm_loss += F.cross_entropy(logits, labels, reduction="sum").item()
            mlm_correct += (logits.argmax(-1) == labels).sum().item()
            mlm_count += labels.numel()
            nsp_logits = out.seq_relationship_logits.float()
            nsp_loss += F.cross_entropy(nsp_logits, nsp_labels, reduction="sum").item()
            nsp_correct += (nsp_logits.argmax(-1) == nsp_labels).sum().item()
            nsp_count += nsp_labels.numel()
        mlm_loss, mlm_correct, mlm_count, nsp_loss, nsp_correct, nsp_count = _summed(
            [mlm_loss, mlm_correct, mlm_count, nsp_loss, nsp_correct, nsp_count], sum_across)
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


class ClassificationObjective:
    """Sequence classification on {input_ids, attention_mask, labels} batches: cross-entropy.

    Evaluation reports validation loss and accuracy."""

    name = "classification"
    head_fraction = 0.0  # no vocabulary head runs

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(**batch).loss

    def num_tokens(self, batch: Batch) -> int:
        return int(batch["attention_mask"].sum())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[Batch],
                 sum_across: SumAcross | None = None) -> dict[str, float]:
        total = correct = count = 0.0
        for batch in batches:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            logits = model(**inputs).logits.float()
            labels = batch["labels"].reshape(-1)
            total += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(-1) == labels).sum().item()
            count += labels.numel()
        total, correct, count = _summed([total, correct, count], sum_across)
        if count == 0:
            raise ValueError("evaluation saw no examples")
        return {"val_loss": total / count, "val_accuracy": correct / count}


def objective_for(name: str, mlm_probability: float = 0.15) -> Objective:
    if name == "causal":
        return CausalLMObjective()
    if name == "mlm_nsp":
        return MLMNSPObjective(mlm_probability)
    from llmos.errors import LLMOSError

    raise LLMOSError(f"unknown objective {name!r}; expected one of ['causal', 'mlm_nsp']")
