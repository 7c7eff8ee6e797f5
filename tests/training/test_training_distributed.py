"""`torchrun --nproc_per_node 2` trains like one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from training_helpers import run_tiny

SCRIPT = """
import json, sys
sys.path.insert(0, {helpers!r})
import torch
from training_helpers import run_tiny
from llmos.training import distributed
ctx = distributed.setup()
settings = dict(ctx=ctx, max_steps=4, eval_every=2, batch_size=4, grad_accum=2, distributed={strategy!r})
first, _ = run_tiny({out!r}, stop_at_step=2, **settings)  # stops after step 2's checkpoint
result, trainer = run_tiny({out!r}, resume="auto", **settings)
if ctx.is_main:
    local = sum(getattr(p, "to_local", lambda: p)().numel() for p in trainer.wrapped.parameters())
    full = sum(p.numel() for p in trainer.wrapped.parameters())
    json.dump({{"losses": first.losses + result.losses, "evals": result.evals,
               "local_fraction": local / full}}, open({report!r}, "w"))
distributed.teardown(ctx)
"""


def _torchrun(tmp_path: Path, strategy: str) -> dict:
    report = tmp_path / f"{strategy}.json"
    script = tmp_path / f"{strategy}.py"
    script.write_text(SCRIPT.format(helpers=str(Path(__file__).parent), out=str(tmp_path / strategy),
                                    strategy=strategy, report=str(report)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                          "2", str(script)], env=env, timeout=180, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(report.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one_process_with_the_same_global_batch_across_a_resume(tmp_path, strategy):
    """2 processes (DDP, or FSDP with sharded weights and optimizer state) stopped after
    step 2 and resumed from the checkpoint == 1 process never stopped, same global batch."""
    single, _ = run_tiny(tmp_path / "single", max_steps=4, eval_every=2, batch_size=4, grad_accum=2)
    parallel = _torchrun(tmp_path, strategy)
    assert [s for s, _ in parallel["losses"]] == [1, 2, 3, 4]
    for (_, a), (_, b) in zip(single.losses, parallel["losses"], strict=True):
        assert a == pytest.approx(b, abs=1e-5)
    for key in ("val_loss", "val_perplexity"):
        assert parallel["evals"][-1][key] == pytest.approx(single.evals[-1][key], rel=1e-5)
    assert parallel["local_fraction"] == (1.0 if strategy == "ddp" else pytest.approx(0.5, abs=0.05))
    assert (tmp_path / strategy / "last" / "trainer_state.json").is_file()
