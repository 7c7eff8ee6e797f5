"""Off a terminal (a log file, the studio's job.log) training progress is plain lines written as the run
goes: one per logged step and one per evaluation, not a progress bar that appears only at the end."""

from __future__ import annotations

from training_helpers import run_tiny


def test_a_run_off_a_terminal_writes_a_line_per_logged_step_and_per_evaluation(tmp_path, capsys):
    run_tiny(tmp_path / "run", max_steps=4, eval_every=2, log_every=2, progress=True)
    lines = capsys.readouterr().out.splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    evals = [line for line in lines if line.startswith("eval at step ")]
    assert [line.split(" | ")[0] for line in steps] == ["step 2/4", "step 4/4"]
    assert all(" tok/s | MFU " in line and "| loss " in line for line in steps)
    assert [line.split(" | ")[0] for line in evals] == ["eval at step 2/4", "eval at step 4/4"]
    assert all("val_loss " in line for line in evals)


def test_progress_false_writes_nothing(tmp_path, capsys):
    run_tiny(tmp_path / "run", max_steps=4, eval_every=2, log_every=2, progress=False)
    assert capsys.readouterr().out == ""
