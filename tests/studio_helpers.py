"""Shared pieces for the studio tests: tiny token shards, a studio on a real uvicorn server, waiting on runs."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from live_server import start_server

from llmos.studio.app import create_app
from llmos.studio.settings import StudioSettings

WORDS = ("the quick brown fox jumps over a lazy dog while seven bright stars watch rivers carry stones to distant "
         "seas and old trees remember every storm").split()

# A model small enough that a CPU step takes milliseconds, and a recipe that logs every step and runs
# until stopped (max_steps far away), so a test can watch it, stop it and resume it.
TINY_FIELDS: dict[str, Any] = {
    "data_dir": "shards", "model": "micro", "model_overrides": {"d_model": 32, "n_layers": 1, "n_heads": 2},
    "max_steps": 100000, "context": 16, "batch_size": 2, "log_every": 1, "eval_every": 0, "eval_batches": 1,
    "warmup_steps": 1,
}


def make_shards(data_dir: Path) -> Path:
    """data_dir/shards: a few KB of generated text tokenized with a 300-token BPE trained on it."""
    from llmos.data import prepare

    corpus = data_dir / "corpus"
    corpus.mkdir(parents=True)
    for i in range(30):
        words = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(60))
        (corpus / f"doc_{i:02d}.txt").write_text(words + "\n")
    (data_dir / "notes.txt").write_text("the quick brown fox jumps over a lazy dog\n" * 20)
    prepare([corpus], data_dir / "shards", vocab_size=300, val_fraction=0.1, progress=False)
    return data_dir / "shards"


@contextlib.contextmanager
def studio(tmp_path: Path, api_key: str | None = None) -> Iterator[tuple[httpx.Client, StudioSettings]]:
    """A studio over tmp_path/runs, tmp_path/models and the data folder tmp_path/data, on a real server."""
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "data").mkdir(exist_ok=True)
    settings = StudioSettings(tmp_path / "runs", tmp_path / "models", (tmp_path / "data",), api_key)
    app = create_app(settings)
    server, thread, url = start_server(app)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            yield client, app.state.settings
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_state(client: httpx.Client, name: str) -> dict[str, Any]:
    response = client.get(f"/api/runs/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def read_events(client: httpx.Client, path: str, until: Callable[[list[tuple[str, dict]]], bool],
                timeout: float = 30.0) -> list[tuple[str, dict]]:
    """(event, data) pairs from an SSE stream, read until `until(events)` or the stream ends."""
    events: list[tuple[str, dict]] = []
    with client.stream("GET", path, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        name = "message"
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
                name = "message"
                if until(events):
                    break
    return events
