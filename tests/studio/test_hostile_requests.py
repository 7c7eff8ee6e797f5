"""Hostile requests to the whole studio over real HTTP (uvicorn + httpx): a model id of `..` stays inside the
studio's folders in every route that takes one, a NUL byte, an overlong path or a deeply nested body is a
400 (never a 500) whose message does not echo a huge value, the dataset list skips symlinks that point out of
the data folders, and a wrong key in a link cannot replace a good key cookie."""

from __future__ import annotations

import os

import httpx
import pytest
from studio_helpers import studio

KEY = "s3cret-key"
LONG = "a" * 5000


def error_of(response: httpx.Response) -> dict:
    return response.json()["error"]


def test_a_model_id_of_dotdot_is_refused_in_every_route_that_takes_one(tmp_path):
    (tmp_path / "secret").mkdir()  # models/.. is tmp_path: a real folder, outside models/
    with studio(tmp_path) as (client, settings):
        (settings.data_dirs[0] / "notes.txt").write_text("the cat sat on the mat\n")
        (settings.data_dirs[0] / "chat.jsonl").write_text('{"prompt": "hi", "completion": "hello"}\n')
        for model_id in ("..", "../secret", "models:..", "."):
            evaluate = client.post("/api/evaluate", json={"model": model_id, "data": "notes.txt"})
            assert evaluate.status_code in (400, 403) and error_of(evaluate)["field"] == "model", evaluate.text
            generate = client.post("/api/generate", json={"model": model_id, "prompt": "hi"})
            assert generate.status_code in (400, 403) and error_of(generate)["field"] == "model", generate.text
            run = client.post("/api/runs", json={"verb": "finetune", "name": "ft",
                                                 "fields": {"data": "chat.jsonl", "base_model": model_id}})
            assert run.status_code in (400, 403) and error_of(run)["field"] == "base_model", run.text
            counted = client.get("/api/datasets/preview", params={"path": "notes.txt", "tokenizer": model_id})
            assert counted.status_code in (400, 403) and error_of(counted)["field"] == "tokenizer", counted.text
        assert client.post("/api/evaluate", json={"model": "..", "data": "notes.txt"}).status_code == 403
        assert not (settings.runs_dir / "ft").exists() and not (settings.runs_dir / "_evals").exists()


@pytest.mark.parametrize("bad", ["\x00", "notes\x00.txt", LONG, "a/" * 2500, "../" + LONG, "b" * 300, "~nosuchuser/x"],
                         ids=["nul", "nul-inside", "5000-chars", "2500-folders", "dotdot-5000", "300-char-name",
                              "unknown-home"])
def test_a_nul_or_an_overlong_path_is_a_400_that_does_not_echo_it(tmp_path, bad):
    with studio(tmp_path) as (client, settings):
        (settings.data_dirs[0] / "x.txt").write_text("the cat sat\n")
        for method, route, kwargs, field in (
                ("GET", "/api/datasets/preview", {"params": {"path": bad}}, "path"),
                ("GET", "/api/datasets/preview", {"params": {"path": "x.txt", "tokenizer": bad}}, "tokenizer"),
                ("POST", "/api/generate", {"json": {"model": bad, "prompt": "hi"}}, "model"),
                ("POST", "/api/generate", {"json": {"model": "models:" + bad, "prompt": "hi"}}, "model"),
                ("POST", "/api/evaluate", {"json": {"model": "runs:" + bad, "data": "x"}}, "model"),
                ("POST", "/api/runs", {"json": {"verb": "pretrain", "name": "p", "fields": {"data_dir": bad}}},
                 "data_dir")):
            response = client.request(method, route, **kwargs)
            assert response.status_code == 400, (route, field, response.text[:300])
            assert error_of(response)["field"] == field
            assert len(error_of(response)["message"]) < 400, error_of(response)["message"]


def test_a_deeply_nested_json_body_is_a_400_on_every_route_that_reads_one(tmp_path):
    nested = "[" * 50_000 + "]" * 50_000
    with studio(tmp_path) as (client, _):
        for route in ("/api/generate", "/api/evaluate", "/api/runs"):
            response = client.post(route, content=nested, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, (route, response.text[:300])
            assert "JSON" in error_of(response)["message"] or "body" in error_of(response)["message"]


def test_the_dataset_list_skips_symlinks_that_point_out_of_the_data_folders(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.jsonl").write_text('{"text": "private"}\n')
    (tmp_path / "outside" / "folder").mkdir()
    (tmp_path / "outside" / "folder" / "more.jsonl").write_text('{"text": "private"}\n')
    with studio(tmp_path) as (client, settings):
        data = settings.data_dirs[0]
        (data / "mine.jsonl").write_text('{"text": "mine"}\n')
        os.symlink(tmp_path / "outside" / "secret.jsonl", data / "leak.jsonl")
        os.symlink(tmp_path / "outside" / "folder", data / "leak_folder")
        os.symlink(data / "mine.jsonl", data / "alias.jsonl")  # a link that stays inside is a dataset
        listed = sorted(d["name"] for d in client.get("/api/datasets").json()["datasets"])
        assert listed == ["alias.jsonl", "mine.jsonl"]
        refused = client.get("/api/datasets/preview", params={"path": "leak.jsonl"})
        assert refused.status_code == 403


def test_a_wrong_key_in_a_link_does_not_replace_a_good_key_cookie(tmp_path):
    with studio(tmp_path, api_key=KEY) as (client, _):
        with httpx.Client(base_url=str(client.base_url), timeout=10) as browser:
            assert browser.get("/", params={"key": KEY}).status_code == 303  # the cookie is set
            assert browser.get("/api/runs").status_code == 200
            forged = browser.get("/", params={"key": "WRONG"})  # a link on another site
            assert forged.status_code == 401 and "/?key=" in forged.text
            assert "set-cookie" not in forged.headers
            assert browser.get("/api/runs").status_code == 200  # still signed in
            assert browser.get("/").status_code == 200
