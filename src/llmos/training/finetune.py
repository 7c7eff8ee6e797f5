"""Layer 6: assemble a fine-tuning run from a `FinetuneConfig`: base model, data, method, trainer.

Any model LLMOS loads is a base (its own checkpoints, Hugging Face directories,
GGUF files, `smollm2`). The method decides what trains: `lora` adds adapters
and trains only them (and a new classifier head), saving checkpoints in PEFT's
format; `freeze` trains the top of the model; `full` trains everything. The
loop, checkpoints, exact resume and logging are the pretraining trainer's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from llmos.adapters import add_lora
from llmos.auto import AutoTokenizer
from llmos.checkpoint import read_config
from llmos.checkpoint.peft_format import restore_adapter, save_adapter
from llmos.data.labelled import DataError, read_labelled
from llmos.data.sft import (
    ClassificationBatches,
    SFTBatches,
    classification_batch,
    detect_format,
    eval_batches_of,
    pad_id_of,
    read_examples,
)
from llmos.generation.loading import describe_source, load_model, source_config
from llmos.model.heads import SequenceClassifier
from llmos.training import distributed as dist_utils
from llmos.training.finetune_recipe import FinetuneConfig
from llmos.training.freeze import (
    check_depth,
    count_parameters,
    freeze_all_but,
    freeze_lower,
    top_blocks,
    train_top,
)
from llmos.training.objectives import (
    CausalLMObjective,
    ClassificationObjective,
    DistilledCausalLMObjective,
)
from llmos.training.trainer import Trainer, TrainResult

logger = logging.getLogger("llmos.training")


class AdapterFiles:
    """Checkpoints of a LoRA run hold the adapter only, in PEFT's format; `base_model` (a name,
    or an absolute path so the adapter loads from any working directory) is recorded in it."""

    def __init__(self, base_model: str, train_heads: bool) -> None:
        self.base_model, self.train_heads = base_model, train_heads

    def save(self, model: nn.Module, directory: Path, tokenizer: Any = None) -> None:
        save_adapter(model, directory, base_model=self.base_model, train_heads=self.train_heads)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)

    def load(self, model: nn.Module, directory: Path) -> None:
        restore_adapter(model, directory)


def finetune(config: FinetuneConfig, report: Any = print) -> TrainResult:
    """Fine-tune `config.base_model` on `config.data`; checkpoints land in `config.out_dir`."""
    if not config.base_model:
        raise DataError("no base model: set base_model (--base-model) to a checkpoint, GGUF file or name")
    if not config.data:
        raise DataError("no data: set data (--data) to a JSONL or labelled-text file")
    task = config.task if config.task != "auto" else detect_format(config.data)
    check_base_depth(config)
    ctx = dist_utils.setup()
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.base_model)
        if task == "classification":
            model, batches, evals, objective = _classification(config, tokenizer)
        else:
            model, batches, evals, objective = _causal(config, tokenizer, task)
        apply_method(model, config)
        trainable, total = count_parameters(model)
        base = Path(config.base_model).resolve() if Path(config.base_model).exists() else config.base_model
        files = AdapterFiles(str(base), task == "classification") if config.method == "lora" else None
        trainer = Trainer(model, config, objective, batches, evals, tokenizer=tokenizer, ctx=ctx, model_files=files)
        if ctx.is_main:
            report(f"{config.method}: training {trainable:,} of {total:,} parameters "
                   f"({100 * trainable / total:.2f}%) on {task} data, "
                   f"{'under bf16 autocast' if trainer.bf16 else 'in float32'} (dtype {config.dtype})")
        return trainer.train()
    finally:
        dist_utils.teardown(ctx)


def check_base_depth(config: FinetuneConfig) -> None:
    """freeze_layers / train_top against the base model's blocks, read from its config alone."""
    if config.freeze_layers or config.train_top:
        check_depth(source_config(config.base_model).n_layers, config.freeze_layers, config.train_top or None)


def apply_method(model: nn.Module, config: FinetuneConfig) -> nn.Module:
    """Freeze / add adapters as `config.method` says (in place)."""
    is_classifier = isinstance(model, SequenceClassifier)
    if config.method == "lora":
        from llmos.checkpoint.peft_format import resolve_targets

        targets, _ = resolve_targets(model, config.lora_targets)
        if config.train_top:  # adapters on the top blocks only: the backward pass stops below them
            top = top_blocks(model, config.train_top)
            targets = {module: parts for module, parts in targets.items() if module.startswith(top)}
        torch.manual_seed(config.seed)  # the adapters' initial A matrices
        add_lora(model, targets, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout)
        freeze_all_but(model, (".adapters.",) + (("classifier",) if is_classifier else ()))
    elif config.method == "freeze":
        if config.train_top:
            train_top(model, config.train_top)
        else:
            freeze_lower(model, config.freeze_layers)
    return model


def _split(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, validation): a seeded random `fraction` held out (at least one item when fraction > 0)."""
    if fraction <= 0 or len(items) < 2:
        return items, []
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = max(1, int(round(len(items) * fraction)))
    val = set(order[:n_val].tolist())
    return [x for i, x in enumerate(items) if i not in val], [x for i, x in enumerate(items) if i in val]


def _causal(config: FinetuneConfig, tokenizer: Any, task: str):
    examples = read_examples(config.data, tokenizer, config.context, task)
    if config.val_data:
        train, val = examples, read_examples(config.val_data, tokenizer, config.context, task)
    else:
        train, val = _split(examples, config.val_fraction, config.seed)
    pad = pad_id_of(tokenizer)
    batches = SFTBatches(train, config.batch_size, config.context, pad, packing=config.packing, seed=config.seed,
                         group_by_length=config.group_by_length)
    if batches.distills and config.method != "lora":  # said before the model loads
        raise DataError(f"{config.data} has 'distill' records: they learn the base model's distribution through an "
                        f"adapter, so they need method lora (got {config.method!r})")
    evals = eval_batches_of(val, config.batch_size, pad)[:config.eval_batches] if val else None
    model = load_model(config.base_model, quantize=_float(config.base_model), tokenizer=False).model
    objective = DistilledCausalLMObjective() if batches.distills else CausalLMObjective()
    return model.train(), batches, evals, objective


def _classification(config: FinetuneConfig, tokenizer: Any):
    names = [n.strip() for n in config.labels.split(",") if n.strip()] or None
    data = read_labelled(config.data, names)
    texts, labels = data.texts, data.labels
    if config.val_data:
        val = read_labelled(config.val_data, data.label_names)
        train_pairs, val_pairs = list(zip(texts, labels, strict=True)), list(zip(val.texts, val.labels, strict=True))
    else:
        train_pairs, val_pairs = _split(list(zip(texts, labels, strict=True)), config.val_fraction, config.seed)
    model = load_classifier(config.base_model, data.label_names)
    pad = pad_id_of(tokenizer)
    model.config.pad_token_id = model.config.pad_token_id if model.config.pad_token_id is not None else pad

    def encode(pairs):
        return [tokenizer.encode(t, truncation=True, max_length=config.context) for t, _ in pairs]

    batches = ClassificationBatches(encode(train_pairs), [y for _, y in train_pairs], config.batch_size, pad,
                                    seed=config.seed)
    evals = None
    if val_pairs:
        ids, ys = encode(val_pairs), [y for _, y in val_pairs]
        evals = [classification_batch(ids[i:i + config.batch_size], ys[i:i + config.batch_size], pad)
                 for i in range(0, len(ids), config.batch_size)][:config.eval_batches]
    return model.train(), batches, evals, ClassificationObjective()


def load_classifier(base_model: str, label_names: list[str]) -> SequenceClassifier:
    """A classifier over `label_names` on the base model's trunk. A checkpoint that already is
    a classifier over the same labels keeps its head; any other base gets a fresh head."""
    source = describe_source(base_model)
    overrides: dict[str, Any] = {"num_labels": len(label_names), "label_names": list(label_names)}
    if source.head == "classifier" and source.format == "checkpoint":
        saved = read_config(source.path)[0]
        if saved.label_names not in ([], list(label_names)):
            raise DataError(f"{base_model!r} classifies {saved.label_names}, the data has labels "
                            f"{list(label_names)}; give --labels in the model's order or use a base model")
    return load_model(source.path, "classifier", quantize=_float(base_model), tokenizer=False, **overrides).model


def _float(base_model: str) -> str:
    """Fine-tuning trains float weights: a GGUF file's quantized blocks are dequantized."""
    return "none" if describe_source(base_model).is_gguf else "auto"
