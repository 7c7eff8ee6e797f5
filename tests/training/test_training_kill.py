"""A process killed (SIGKILL) while writing a checkpoint leaves the last good one usable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from training_helpers import run_tiny

from llmos.checkpoint import CheckpointError
from llmos.training.state import resolve_checkpoint

SCRIPT = """
import sys
sys.path.insert(0, {helpers!r})
from training_helpers import run_tiny
run_tiny({out!r}, max_steps=6, eval_every=2)
"""


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    out = tmp_path / "run"
    script = SCRIPT.format(helpers=str(Path(__file__).parent), out=str(out))
    # Writes: step 2 -> last (1st), best (2nd); step 4 -> last (3rd): sleep in the middle of it.
    env = {**os.environ, "LLMOS_TEST_SLEEP_IN_SAVE": "120@3", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        partial = out / "last.tmp" / "optimizer.safetensors"
        deadline = time.monotonic() + 90
        # `best` exists only once the 2nd write is done: a partial `last` then is the 3rd, hooked one
        # (the 1st write's own last.tmp, seen between polls, is not the moment to kill).
        while not (partial.exists() and (out / "best").exists()):
            assert proc.poll() is None, "the training process ended before the hooked save"
            assert time.monotonic() < deadline, "the hooked save never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (out / "last.tmp" / "trainer_state.json").exists()  # the new one was half written
    survivor = resolve_checkpoint(out / "last")
    state = json.loads((survivor / "trainer_state.json").read_text())
    assert state["step"] == 2
    # ... and the run resumes from it and finishes.
    result, trainer = run_tiny(out, max_steps=6, eval_every=2, resume="auto")
    assert [s for s, _ in result.losses] == [3, 4, 5, 6] and trainer.step == 6
    assert not (out / "last.tmp").exists() and not (out / "last.old").exists()


def test_a_kill_between_the_two_renames_still_finds_the_previous_checkpoint(tmp_path):
    run_tiny(tmp_path, max_steps=2, eval_every=0)
    (tmp_path / "last").rename(tmp_path / "last.old")  # the moment before last.tmp -> last
    assert resolve_checkpoint(tmp_path / "last") == tmp_path / "last.old"
    result, _ = run_tiny(tmp_path, max_steps=4, eval_every=0, resume="auto")
    assert [s for s, _ in result.losses] == [3, 4]


def test_no_checkpoint_to_resume_raises_the_checkpoint_layers_error(tmp_path):
    with pytest.raises(CheckpointError, match="no complete trainer checkpoint"):
        resolve_checkpoint(tmp_path / "last")
