"""One trainer per run folder: the main process holds the folder's lock while it trains; a second trainer
is refused with the holder's pid, and anyone can ask which process trains a folder now."""

from __future__ import annotations

import os

import pytest
from training_helpers import run_tiny

from llmos.errors import LLMOSError
from llmos.training.run_lock import training_lock, training_pid


def test_a_second_trainer_on_a_folder_being_trained_is_refused_with_the_holders_pid(tmp_path):
    run_dir = tmp_path / "run"
    assert training_pid(run_dir) is None
    with training_lock(run_dir):
        assert training_pid(run_dir) == os.getpid()
        with pytest.raises(LLMOSError, match=rf"is being trained by another process \(pid {os.getpid()}\)"):
            run_tiny(run_dir, max_steps=2)
    assert training_pid(run_dir) is None
    result, _ = run_tiny(run_dir, max_steps=2)  # free again
    assert result.steps == 2 and training_pid(run_dir) is None
