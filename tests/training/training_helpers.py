"""Shared pieces for the training tests: a resumable in-memory batch source and tiny runs."""

from __future__ import annotations

import torch

from llmos.config import ModelConfig
from llmos.model import CausalLM
from llmos.training import CausalLMObjective, TrainConfig, Trainer


class ToyBatches:
    """Deterministic (x, y) batches cut from a fixed token stream with a learnable pattern,
    resumable through state_dict()."""

    def __init__(self, batch_size: int, context: int, vocab: int = 64, seed: int = 0, length: int = 20000):
        g = torch.Generator().manual_seed(seed)
        period = torch.randint(0, vocab, (7,), generator=g)
        noise = torch.randint(0, vocab, (length,), generator=g)
        pattern = period.repeat(length // 7 + 1)[:length]
        self.data = torch.where(torch.rand(length, generator=g) < 0.8, pattern, noise)
        self.batch_size, self.context, self.index = batch_size, context, 0

    def __iter__(self):
        return self

    def __next__(self):
        n = self.batch_size * self.context
        start = (self.index * n) % (len(self.data) - n - 1)
        self.index += 1
        x = self.data[start : start + n].view(self.batch_size, self.context)
        y = self.data[start + 1 : start + 1 + n].view(self.batch_size, self.context)
        return x, y

    def state_dict(self):
        return {"index": self.index}

    def load_state_dict(self, state):
        self.index = state["index"]


def tiny_config(**overrides) -> ModelConfig:
    return ModelConfig.from_preset("micro", **{"vocab_size": 64, "max_seq_len": 32, **overrides})


def run_tiny(out_dir, model_config: ModelConfig | None = None, model_seed: int = 0, ctx=None,
             **train) -> tuple:
    """Train a micro causal LM on ToyBatches; returns (result, trainer)."""
    torch.manual_seed(model_seed)
    model = CausalLM(model_config or tiny_config())
    settings = dict(out_dir=str(out_dir), max_steps=8, context=16, batch_size=4, eval_every=4,
                    log_every=1, warmup_steps=2, lr=3e-3, min_lr=3e-4, progress=False)
    settings.update(train)
    config = TrainConfig(**settings)
    held_out = ToyBatches(4, config.context)
    held_out.index = 250  # far from the few batches a test trains on
    evals = [next(held_out)]
    trainer = Trainer(model, config, CausalLMObjective(),
                      ToyBatches(config.batch_size, config.context), evals, ctx=ctx)
    return trainer.train(), trainer
