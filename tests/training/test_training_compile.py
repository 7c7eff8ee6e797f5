"""A short torch.compile'd training run: compiled steps, then evaluations (no-grad forwards of the
compiled model, on batches of another shape than training's), with the eager run's losses."""

from __future__ import annotations

import math

import torch
from training_helpers import ToyBatches, tiny_config

from llmos.model import CausalLM
from llmos.training import CausalLMObjective, TrainConfig, Trainer


def train(out_dir, compile: bool):
    torch.manual_seed(0)
    model = CausalLM(tiny_config(d_model=32, n_layers=1, n_heads=2, position="learned", norm="layernorm",
                                 mlp="gelu"))
    config = TrainConfig(out_dir=str(out_dir), max_steps=4, context=16, batch_size=4, eval_every=2,
                         log_every=1, warmup_steps=1, lr=3e-3, grad_clip=1.0, progress=False, compile=compile)
    held_out = ToyBatches(2, 12)  # another batch size and length than training's: a fresh graph
    held_out.index = 250
    evals = [next(held_out), next(held_out)]
    return Trainer(model, config, CausalLMObjective(), ToyBatches(4, 16), evals).train()


def test_compiled_training_evaluates_and_matches_eager(tmp_path):
    compiled = train(tmp_path / "compiled", compile=True)
    eager = train(tmp_path / "eager", compile=False)
    assert [e["step"] for e in compiled.evals] == [2, 4]
    assert all(math.isfinite(e["val_loss"]) for e in compiled.evals)
    for (step, loss), (eager_step, eager_loss) in zip(compiled.losses, eager.losses, strict=True):
        assert step == eager_step and abs(loss - eager_loss) < 1e-3
    for mine, reference in zip(compiled.evals, eager.evals, strict=True):
        assert abs(mine["val_loss"] - reference["val_loss"]) < 1e-3
