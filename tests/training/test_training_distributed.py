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
result, trainer = run_tiny({out!r}, ctx=ctx, max_steps=4, eval_every=2, batch_size=4, distributed={strategy!r})
if ctx.is_main:
    json.dump({{"losses": result.losses, "evals": result.evals}}, open({report!r}, "w"))
distributed.teardown(ctx)
"""


def _torchrun(tmp_path: Path, strategy: str) -> dict:
    report = tmp_path / f"{strategy}.json"
    script = tmp_path / f"{strategy}.py"
    script.write_text(SCRIPT.format(helpers=str(Path(__file__).parent), out=str(tmp_path / strategy),
                                    strategy=strategy, report=str(report)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(script)], env=env, check=True, timeout=180, capture_output=True)
    return json.loads(report.read_text())


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path):
    single, _ = run_tiny(tmp_path / "single", max_steps=4, eval_every=2, batch_size=4)
    ddp = _torchrun(tmp_path, "ddp")
    assert [s for s, _ in ddp["losses"]] == [1, 2, 3, 4]
    for (_, a), (_, b) in zip(single.losses, ddp["losses"], strict=True):
        assert a == pytest.approx(b, abs=1e-5)
    assert ddp["evals"][-1]["val_loss"] == pytest.approx(single.evals[-1]["val_loss"], abs=1e-5)
    assert (tmp_path / "ddp" / "last" / "trainer_state.json").is_file()
