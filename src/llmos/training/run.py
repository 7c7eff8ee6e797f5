"""Layer 6: assemble a pretraining run from a `TrainConfig`: data, model, objective, trainer.

This is what `llmos pretrain` (and `llmos quickstart`, after it prepares data)
calls; it is the same under `torchrun`, where every process builds the same
global batches and the trainer hands each process its slice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.config import ModelConfig
from llmos.errors import LLMOSError
from llmos.model import CausalLM, PreTrainingModel
from llmos.training import distributed as dist_utils
from llmos.training.objectives import objective_for
from llmos.training.recipe import TrainConfig
from llmos.training.trainer import Trainer, TrainResult, check_context


def build_model_config(config: TrainConfig, vocab_size: int, eos_id: int | None) -> ModelConfig:
    """The preset, with the data's vocabulary and the recipe's overrides on top."""
    overrides: dict[str, Any] = {"vocab_size": vocab_size}
    if eos_id is not None:
        overrides["eos_token_id"] = eos_id
    overrides.update(config.model_overrides)
    model_config = ModelConfig.from_preset(config.model, **overrides)
    if config.objective == "mlm_nsp" and model_config.causal:
        model_config = model_config.replace(causal=False, type_vocab_size=model_config.type_vocab_size or 2)
    check_context(config.context, model_config)
    return model_config


def load_data_tokenizer(data_dir: Path) -> Any:
    """The tokenizer the shards were made with (saved into every checkpoint), or None."""
    from llmos.data.tokenizing import load_tokenizer

    try:
        return load_tokenizer(data_dir)
    except (LLMOSError, OSError):
        return None


def pretrain(config: TrainConfig) -> TrainResult:
    """Train on the token shards in `config.data_dir`; checkpoints land in `config.out_dir`."""
    from llmos.data import CausalBatches, TokenShards, eval_batches

    if not config.data_dir:
        raise LLMOSError("no data: set data_dir (--data-dir) to a directory written by `llmos.data.prepare`")
    ctx = dist_utils.setup()
    try:
        train = TokenShards(config.data_dir, "train")
        model_config = build_model_config(config, train.vocab_size, train.eos_id)
        model = _model_for(config.objective, model_config)
        tokenizer = load_data_tokenizer(train.tokenizer_dir)
        if config.objective == "causal":
            batches = CausalBatches(train, config.batch_size, config.context, seed=config.seed)
            val = _val_split(config.data_dir, config.context)
            evals = eval_batches(val, config.batch_size, config.context, config.eval_batches) if val else None
        else:
            batches, evals = _mlm_batches(config, train)
        trainer = Trainer(model, config, objective_for(config.objective, config.mlm_probability), batches, evals,
                          tokenizer=tokenizer, ctx=ctx)
        return trainer.train()
    finally:
        dist_utils.teardown(ctx)


def _model_for(objective: str, model_config: ModelConfig):
    return CausalLM(model_config) if objective == "causal" else PreTrainingModel(model_config)


def _val_split(data_dir: str, context: int):
    from llmos.data import ShardError, TokenShards

    try:
        val = TokenShards(data_dir, "val")
    except ShardError:
        return None
    return val if val.num_tokens > context else None


def _mlm_batches(config: TrainConfig, train):
    try:
        from llmos.data import MLMNSPBatches
    except ImportError as exc:
        raise LLMOSError("objective 'mlm_nsp' needs llmos.data.MLMNSPBatches, which this build lacks") from exc
    batches = MLMNSPBatches(train, config.batch_size, config.context, seed=config.seed,
                            mlm_probability=config.mlm_probability)
    val = _val_split(config.data_dir, config.context)
    evals = None
    if val is not None:
        val_iter = MLMNSPBatches(val, config.batch_size, config.context, seed=config.seed + 1,
                                 mlm_probability=config.mlm_probability)
        evals = [next(val_iter) for _ in range(config.eval_batches)]
    return batches, evals
