"""Runs through the studio over real HTTP: start a tiny pretraining job, follow its metrics live, stop it
(the trainer saves `last`), resume it from that step; refuse a second start and bad recipes with the
CLI's message and the field named; a deleted run folder is a 404 and a "gone" event."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from studio_helpers import TINY_FIELDS, make_shards, read_events, run_state, studio, wait_for


def test_a_run_starts_streams_metrics_stops_with_last_and_resumes_from_that_step(tmp_path):
    make_shards(tmp_path / "data")
    with studio(tmp_path) as (client, settings):
        created = client.post("/api/runs", json={"verb": "pretrain", "name": "tiny", "fields": TINY_FIELDS})
        assert created.status_code == 201, created.text
        assert created.json()["name"] == "tiny" and created.json()["state"] == "running"
        run_dir = settings.runs_dir / "tiny"
        job = json.loads((run_dir / "job.json").read_text())
        assert job["argv"] == [sys.executable, "-m", "llmos", "pretrain", "--config", str(run_dir / "recipe.yaml")]

        again = client.post("/api/runs/tiny/resume")
        assert again.status_code == 409 and again.json()["error"]["message"] == "run 'tiny' is already running"
        taken = client.post("/api/runs", json={"verb": "pretrain", "name": "tiny", "fields": TINY_FIELDS})
        assert taken.status_code == 409
        assert taken.json()["error"] == {"message": "run 'tiny' already exists; resume it or pick another name",
                                         "field": "name"}

        events = read_events(client, "/api/runs/tiny/events",
                             until=lambda evs: sum(e == "metric" for e, _ in evs) >= 3, timeout=60)
        metrics = [data for name, data in events if name == "metric"]
        assert [m["step"] for m in metrics[:3]] == [1, 2, 3] and all(m["kind"] == "train" for m in metrics)
        assert any(name == "status" and data["state"] == "running" for name, data in events)
        listed = client.get("/api/runs").json()["runs"]
        assert [r["name"] for r in listed] == ["tiny"] and listed[0]["eta_s"] is not None

        stop = client.post("/api/runs/tiny/stop")
        assert stop.status_code == 202, stop.text
        stopped = wait_for(lambda: (s := run_state(client, "tiny"))["state"] == "stopped" and s, "the stop")
        assert "last" in stopped["checkpoints"]
        saved = json.loads((run_dir / "last" / "trainer_state.json").read_text())["step"]
        assert saved == max(r["step"] for r in stopped["metrics"] if r["kind"] == "train") >= 3
        assert client.post("/api/runs/tiny/stop").status_code == 409  # nothing left to stop

        resumed = client.post("/api/runs/tiny/resume")
        assert resumed.status_code == 200, resumed.text
        assert json.loads((run_dir / "job.json").read_text())["argv"][-2:] == ["--resume", "auto"]
        later = wait_for(lambda: (s := run_state(client, "tiny"))["step"] > saved + 2 and s, "steps after resume")
        steps = [r["step"] for r in later["metrics"] if r["kind"] == "train"]
        assert steps[: saved + 3] == list(range(1, saved + 4))  # continues from the saved step, no gap
        assert client.post("/api/runs/tiny/stop").status_code == 202
        wait_for(lambda: run_state(client, "tiny")["state"] == "stopped", "the second stop")


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"batch_size": 0}, "batch_size", "batch_size=0 must be a positive integer"),
    ({"dtype": "float8"}, "dtype", "dtype='float8' is not valid; expected one of ['float32', 'bfloat16', 'auto']"),
    ({"lr": "fast"}, "lr", "lr='fast' is not a valid number"),
    ({"model": "huge"}, "model", None),
    ({"data_dir": "nowhere"}, "data_dir", "data_dir 'nowhere' does not exist"),
    ({"sizes": 3}, "sizes", None),
    ({"min_lr": 1}, "min_lr", "need lr > 0 and 0 <= min_lr <= lr; got lr=0.001, min_lr=1.0"),
])
def test_bad_recipes_are_refused_with_the_clis_message_and_the_field(tmp_path, fields, field, message):
    (tmp_path / "data" / "shards").mkdir(parents=True)
    with studio(tmp_path) as (client, settings):
        response = client.post("/api/runs", json={"verb": "pretrain", "name": "bad",
                                                  "fields": {"data_dir": "shards", **fields}})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["field"] == field
        if message is not None:
            assert error["message"] == message
        else:
            assert error["message"].startswith(("unknown recipe key(s) ['sizes']", "unknown preset 'huge'"))
        assert not (settings.runs_dir / "bad").exists()  # nothing written for a refused run


def test_paths_and_names_outside_the_studios_folders_are_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with studio(tmp_path) as (client, _):
        for data_dir in (str(outside), "../elsewhere"):
            response = client.post("/api/runs", json={"verb": "pretrain", "name": "x",
                                                      "fields": {"data_dir": data_dir}})
            assert response.status_code == 403, response.text
            assert response.json()["error"]["field"] == "data_dir"
            assert "outside the studio's folders" in response.json()["error"]["message"]
        bad_name = client.post("/api/runs", json={"verb": "pretrain", "name": "../x", "fields": {}})
        assert bad_name.status_code == 400 and bad_name.json()["error"]["field"] == "name"
        assert client.get("/api/runs/..%2Fetc").status_code in (400, 404)
        no_verb = client.post("/api/runs", json={"verb": "serve", "name": "x", "fields": {}})
        assert no_verb.status_code == 400 and no_verb.json()["error"]["field"] == "verb"


def test_a_deleted_run_ends_its_stream_with_gone_and_reads_404(tmp_path):
    with studio(tmp_path) as (client, settings):
        run_dir = settings.runs_dir / "old"
        run_dir.mkdir()
        (run_dir / "recipe.yaml").write_text("max_steps: 4\n")
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"kind": "train", "step": s, "loss": 5.0 - s})
                                                       + "\n" for s in range(1, 5)))
        summary = run_state(client, "old")
        assert summary["state"] == "finished" and summary["step"] == 4 and summary["loss"] == 1.0

        def delete_after_history(events):
            if sum(e == "metric" for e, _ in events) == 4 and run_dir.exists():
                shutil.rmtree(run_dir)
            return events[-1][0] == "gone"

        events = read_events(client, "/api/runs/old/events", until=delete_after_history)
        assert [d["step"] for e, d in events if e == "metric"] == [1, 2, 3, 4]
        assert events[-1] == ("gone", {"name": "old", "message": "run 'old' was deleted"})
        missing = client.get("/api/runs/old")
        assert missing.status_code == 404 and "does not exist" in missing.json()["error"]["message"]
        assert client.get("/api/runs/old/events").status_code == 404


@pytest.mark.parametrize(("fields", "status", "field", "message"), [
    ({"data": "chat.jsonl"}, 400, "base_model", "base_model is empty; give a model name, a run checkpoint or a path"),
    ({"data": "chat.jsonl", "base_model": "runs:../../x"}, 403, "base_model", None),
    ({"data": "missing.jsonl", "base_model": "smollm2"}, 400, "data", "data 'missing.jsonl' does not exist"),
    ({"data": "chat.jsonl", "val_data": "/etc/passwd", "base_model": "smollm2"}, 403, "val_data", None),
    ({"data": "chat.jsonl", "base_model": "smollm2", "method": "qlora"}, 400, "method",
     "method='qlora' is not valid; expected one of ['lora', 'freeze', 'full']"),
    ({"data": "chat.jsonl", "base_model": "smollm2", "lora_dropout": 1.5}, 400, "lora_dropout", None),
    ({"data": "chat.jsonl", "base_model": "smollm2", "out_dir": "/tmp/x"}, 400, "out_dir",
     "out_dir is set by the studio, not the form"),
])
def test_bad_finetune_recipes_name_the_field(tmp_path, fields, status, field, message):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "chat.jsonl").write_text('{"prompt": "hi", "completion": "hello"}\n')
    with studio(tmp_path) as (client, settings):
        response = client.post("/api/runs", json={"verb": "finetune", "name": "ft", "fields": fields})
        assert response.status_code == status, response.text
        assert response.json()["error"]["field"] == field
        if message is not None:
            assert response.json()["error"]["message"] == message
        assert not (settings.runs_dir / "ft").exists()


def test_the_recipe_form_comes_from_the_dataclasses(tmp_path):
    with studio(tmp_path) as (client, _):
        forms = client.get("/api/recipes").json()
    pretrain = {f["name"]: f for f in forms["pretrain"]}
    finetune = {f["name"]: f for f in forms["finetune"]}
    assert not {"out_dir", "resume", "progress", "distributed"} & (set(pretrain) | set(finetune))
    assert pretrain["data_dir"] == {"name": "data_dir", "type": "str", "default": "", "choices": None,
                                    "help": "token shards written by `llmos.data.prepare`", "group": "main"}
    assert "micro" in pretrain["model"]["choices"] and pretrain["objective"]["choices"] == ["causal", "mlm_nsp"]
    assert pretrain["model_overrides"]["type"] == "dict" and pretrain["compile"]["type"] == "bool"
    assert pretrain["max_minutes"]["help"].startswith("stop after this wall time")  # RunConfig's comment
    assert finetune["lr"]["default"] == 2e-4 and finetune["method"]["choices"] == ["lora", "freeze", "full"]
    assert finetune["base_model"]["group"] == "main" and finetune["lora_r"]["group"] == "advanced"


def test_a_restarted_studio_and_a_second_client_see_the_same_running_job_and_can_stop_it(tmp_path):
    make_shards(tmp_path / "data")
    with studio(tmp_path) as (client, _):
        assert client.post("/api/runs", json={"verb": "pretrain", "name": "kept", "fields": TINY_FIELDS}).status_code == 201
        wait_for(lambda: run_state(client, "kept")["step"] >= 2, "the first steps")
    # the first studio is gone; its job is not
    with studio(tmp_path) as (client, _), studio(tmp_path) as (other, _):
        seen = wait_for(lambda: (s := run_state(client, "kept"))["step"] >= 4 and s, "steps after the restart")
        assert seen["state"] == "running" and run_state(other, "kept")["state"] == "running"
        assert other.post("/api/runs/kept/stop").status_code == 202
        stopped = wait_for(lambda: (s := run_state(client, "kept"))["state"] == "stopped" and s, "the stop")
        assert "last" in stopped["checkpoints"] and run_state(other, "kept") == stopped


def test_a_run_trained_outside_the_studio_reads_running_and_its_stop_reaches_the_trainer(tmp_path):
    make_shards(tmp_path / "data")
    run_dir = tmp_path / "runs" / "cli"
    run_dir.mkdir(parents=True)
    recipe = {**TINY_FIELDS, "data_dir": str(tmp_path / "data" / "shards"), "out_dir": str(run_dir)}
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    trainer = subprocess.Popen([sys.executable, "-m", "llmos", "pretrain", "--config", str(run_dir / "recipe.yaml")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with studio(tmp_path) as (client, _):
            seen = wait_for(lambda: (s := run_state(client, "cli"))["step"] >= 2 and s, "the CLI run's first steps")
            assert seen["state"] == "running" and f"process {trainer.pid}" in seen["message"]
            assert client.post("/api/runs/cli/resume").status_code == 409  # a second trainer would overwrite it
            assert client.post("/api/runs/cli/stop").status_code == 202
            assert trainer.wait(timeout=30) == 0
            stopped = run_state(client, "cli")
            assert stopped["state"] == "stopped" and "last" in stopped["checkpoints"]
    finally:
        trainer.kill()
