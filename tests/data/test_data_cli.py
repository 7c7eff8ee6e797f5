"""`llmos data prepare` and `llmos data stdlib`: happy paths and one-line errors (exit 2)."""

from __future__ import annotations

import sys

import pytest

from llmos.cli.main import main
from llmos.data import TokenShards


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["llmos", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return exc.value.code or 0, out, err


def test_data_prepare_writes_shards_and_prints_one_summary_line(
    tmp_path, monkeypatch, capsys, write_text_corpus
):
    write_text_corpus(tmp_path / "corpus", 10)
    (tmp_path / "corpus" / "extra.jsonl").write_text('{"body": "the fox \\u00e9"}\n')
    code, out, err = _run(
        monkeypatch,
        capsys,
        "data",
        "prepare",
        str(tmp_path / "corpus"),
        "--out",
        str(tmp_path / "data"),
        "--tokenizer-kind",
        "char",
        "--vocab-size",
        "100",
        "--val-fraction",
        "0.2",
        "--text-field",
        "body",
        "--seed",
        "1",
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "train" in lines[0] and "val" in lines[0]
    train, val = TokenShards(tmp_path / "data", "train"), TokenShards(tmp_path / "data", "val")
    assert train.num_documents + val.num_documents == 11
    assert f"train {train.num_tokens:,} tokens" in lines[0]
    assert train.index["seed"] == 1 and train.index["text_field"] == "body"


def test_data_prepare_with_a_missing_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    code, out, err = _run(
        monkeypatch, capsys, "data", "prepare", str(tmp_path / "nope"), "--out", str(tmp_path / "o")
    )
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "nope" in err
    assert "Traceback" not in err


def test_data_prepare_with_a_bad_jsonl_field_exits_2_naming_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "a.jsonl").write_text('{"text": "hi"}\n')
    code, _, err = _run(
        monkeypatch,
        capsys,
        "data",
        "prepare",
        str(tmp_path / "a.jsonl"),
        "--out",
        str(tmp_path / "o"),
        "--text-field",
        "content",
    )
    assert code == 2 and err.count("\n") == 1 and "'content'" in err


def test_data_stdlib_writes_a_corpus_file(tmp_path, monkeypatch, capsys):
    target = tmp_path / "stdlib.txt"
    code, out, err = _run(
        monkeypatch, capsys, "data", "stdlib", str(target), "--max-bytes", "20000"
    )
    assert code == 0, err
    assert 10_000 < target.stat().st_size <= 20_000
    assert "wrote" in out
