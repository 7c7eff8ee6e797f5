"""A running run's ETA in the studio's runs list: the sooner of the steps left at its speed and the time
left of its `max_minutes` (the trainer stops there), read through the real API from a run folder that a
trainer would write, held by this process's training lock so it reads as running."""

from __future__ import annotations

import json

import pytest
import yaml
from studio_helpers import studio

from llmos.training.run_lock import training_lock

RECIPE = {"model": "micro", "max_steps": 100_000, "batch_size": 2, "context": 16, "data_dir": "shards"}
RECORD = {"kind": "train", "step": 10, "loss": 5.0, "tokens_per_second": 320.0, "elapsed": 30.0}  # 0.1 s a step


@pytest.mark.parametrize(("max_minutes", "eta"), [
    (2, 90.0),  # 100,000 steps would take ~2.8 hours; the trainer stops at 2 minutes, 90 s from now
    (0, 9999.0),  # no time limit: the steps left at the current speed
    (600, 9999.0),  # the steps end before the time limit does
])
def test_a_running_runs_eta_is_the_sooner_of_its_steps_and_its_max_minutes(tmp_path, max_minutes, eta):
    run_dir = tmp_path / "runs" / "timed"
    run_dir.mkdir(parents=True)
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump({**RECIPE, "max_minutes": max_minutes}))
    (run_dir / "metrics.jsonl").write_text(json.dumps(RECORD) + "\n")
    with training_lock(run_dir), studio(tmp_path) as (client, _):
        run = client.get("/api/runs/timed").json()
        assert run["state"] == "running"
        assert run["eta_s"] == eta
        assert client.get("/api/runs").json()["runs"][0]["eta_s"] == eta
