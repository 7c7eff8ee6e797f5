"""SIGTERM stops a run cleanly: the step in progress ends, `last` is saved, and resuming continues exactly."""

from __future__ import annotations

import json
import os
import signal

import torch
from training_helpers import ToyBatches, run_tiny, tiny_config

from llmos.model import CausalLM
from llmos.training import CausalLMObjective, TrainConfig, Trainer


class SignalAtBatch(ToyBatches):
    """ToyBatches that sends this process SIGTERM when it hands out batch number `at`."""

    def __init__(self, *args, at: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.at = at

    def __next__(self):
        if self.index == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().__next__()


def test_sigterm_ends_the_step_saves_last_and_the_resumed_run_matches_an_uninterrupted_one(tmp_path):
    config = tiny_config(dropout=0.1)
    straight, _ = run_tiny(tmp_path / "straight", config, max_steps=10, eval_every=3)

    torch.manual_seed(0)
    recipe = TrainConfig(out_dir=str(tmp_path / "split"), max_steps=10, context=16, batch_size=4, eval_every=3,
                         log_every=1, warmup_steps=2, lr=3e-3, min_lr=3e-4, progress=False)
    held_out = ToyBatches(4, 16)
    held_out.index = 250
    before = signal.getsignal(signal.SIGTERM)
    trainer = Trainer(CausalLM(config), recipe, CausalLMObjective(), SignalAtBatch(4, 16, at=4), [next(held_out)])
    stopped = trainer.train()
    assert signal.getsignal(signal.SIGTERM) is before  # the old handler is back
    assert trainer.stop_requested and stopped.steps == 5  # batch 4 is step 5's: that step still finished
    state = json.loads((tmp_path / "split" / "last" / "trainer_state.json").read_text())
    assert state["step"] == 5

    resumed, _ = run_tiny(tmp_path / "split", config, model_seed=99, max_steps=10, eval_every=3, resume="auto")
    assert stopped.losses + resumed.losses == straight.losses  # bit for bit
