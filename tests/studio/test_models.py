"""Models in the studio: ids resolve only inside its folders; run checkpoints are listed with their config,
size and parameter count; an evaluation runs `llmos eval` as a job and its report is listed with the
checkpoint it scored."""

from __future__ import annotations

import pytest
from studio_helpers import TINY_FIELDS, make_shards, studio, wait_for

from llmos.studio.models import resolve_model
from llmos.studio.paths import StudioError
from llmos.studio.settings import StudioSettings
from llmos.training.recipe import TrainConfig
from llmos.training.run import pretrain


def test_model_ids_resolve_inside_the_studios_folders_only(tmp_path):
    (tmp_path / "models" / "mine").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "best").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "secret").mkdir()
    settings = StudioSettings(tmp_path / "runs", tmp_path / "models", (tmp_path / "data",)).resolved()
    assert resolve_model(settings, "smollm2") == "smollm2"
    assert resolve_model(settings, "mine") == str(tmp_path / "models" / "mine")
    assert resolve_model(settings, "models:mine") == str(tmp_path / "models" / "mine")
    assert resolve_model(settings, "runs:r/best") == str(tmp_path / "runs" / "r" / "best")
    for model_id, status in (("runs:../secret", 403), ("models:../secret", 403), (str(tmp_path / "secret"), 403),
                             ("runs:r/last", 400), ("", 400)):
        with pytest.raises(StudioError) as caught:
            resolve_model(settings, model_id, field="base_model")
        assert (caught.value.status, caught.value.field) == (status, "base_model"), model_id


def test_checkpoints_are_listed_and_an_evaluation_report_joins_its_checkpoint(tmp_path):
    shards = make_shards(tmp_path / "data")
    fields = {**TINY_FIELDS, "data_dir": str(shards), "max_steps": 2, "out_dir": str(tmp_path / "runs" / "r1"),
              "progress": False}
    pretrain(TrainConfig.from_dict(fields))
    with studio(tmp_path) as (client, _):
        models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
        last = models["runs:r1/last"]
        assert {"runs:r1/best", "runs:r1/last"} <= set(models)
        assert last["source"] == "run" and last["name"] == "r1/last"
        assert last["config"]["d_model"] == 32 and last["config"]["n_layers"] == 1
        assert last["size_bytes"] > 0 and last["evals"] == []
        # micro with d_model 32, 1 layer, vocabulary 300 (tied embeddings stored once)
        assert 10_000 < last["parameters"] < 100_000

        for body, field in (({"model": "runs:r1/last", "data": "nowhere.txt"}, "data"),
                            ({"model": "runs:r1/last", "data": "notes.txt", "task": "poetry"}, "task"),
                            ({"model": "runs:nope/last", "data": "notes.txt"}, "model")):
            refused = client.post("/api/evaluate", json=body)
            assert refused.status_code == 400 and refused.json()["error"]["field"] == field, refused.text

        started = client.post("/api/evaluate", json={"model": "runs:r1/last", "data": "notes.txt"})
        assert started.status_code == 201, started.text
        name = started.json()["eval"]
        assert name.startswith("r1/last-") and started.json()["state"] == "running"
        done = wait_for(lambda: (e := client.get(f"/api/evals/{name}").json())["state"] != "running" and e,
                        "the evaluation", timeout=60)
        assert done["state"] == "finished", done["log_tail"]
        assert done["task"] == "perplexity" and done["metrics"]["perplexity"] > 1
        listed = {m["id"]: m for m in client.get("/api/models").json()["models"]}["runs:r1/last"]["evals"]
        assert [e["name"] for e in listed] == [name] and listed[0]["metrics"] == done["metrics"]
        assert client.get("/api/evals/r1/best-1").status_code == 404
