"""A run's metrics.jsonl is parsed again only when it changed: the runs list polls every run's
metrics every two seconds, and most runs are not training."""

from __future__ import annotations

from llmos.studio import runs

TRAIN = '{"kind": "train", "step": 1, "loss": 2.0}\n'
EVAL = '{"kind": "eval", "step": 2, "val_loss": 1.5}\n'


def test_unchanged_metrics_are_not_parsed_again_and_every_change_is_read(tmp_path, monkeypatch):
    parsed = []
    parse = runs.parse_records
    monkeypatch.setattr(runs, "parse_records", lambda text: parsed.append(text) or parse(text))
    file = tmp_path / "metrics.jsonl"
    file.write_text(TRAIN + '{"kind": "eval", "st')  # a line still being written
    assert [r["step"] for r in runs.read_records(tmp_path)] == [1]
    assert [r["step"] for r in runs.read_records(tmp_path)] == [1]
    assert len(parsed) == 1
    file.write_text(TRAIN + EVAL)  # the line finished
    assert [r["step"] for r in runs.read_records(tmp_path)] == [1, 2]
    assert runs.summary(tmp_path)["val_loss"] == 1.5
    assert len(parsed) == 2
    file.unlink()  # the folder's metrics went away
    assert runs.read_records(tmp_path) == []
    file.write_text(TRAIN)  # a resume from step 0 rewrote it
    assert [r["step"] for r in runs.read_records(tmp_path)] == [1]
    assert len(parsed) == 3
