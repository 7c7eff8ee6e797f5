"""`llmos eval MODEL --data FILE`: the task follows the file, the metrics and the JSON report are the
library's, classification draws a PNG, and bad input is one line on stderr with exit code 2."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
import torch.nn.functional as F

from llmos.cli.main import main
from llmos.evaluation.classification import evaluate_classification

LABELS = ["negative", "neutral", "positive"]


def run(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["llmos", "eval", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return exc.value.code or 0, out, err


def test_perplexity_of_a_text_file_goes_to_the_default_report(tmp_path, monkeypatch, capsys, causal_checkpoint):
    path, model, tokenizer = causal_checkpoint
    text = "the cat sat on the mat . paris is nice and the dog ran far away"
    (tmp_path / "a.txt").write_text(text)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(monkeypatch, capsys, path, "--data", "a.txt")
    assert code == 0, err
    report = json.loads((tmp_path / "runs" / "eval" / f"{path.name}-perplexity.json").read_text())
    ids = tokenizer.encode(text)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    mean_ce = float(F.cross_entropy(logits[:-1], torch.tensor(ids[1:])))
    assert report["task"] == "perplexity" and report["data"] == "a.txt" and report["model"] == str(path)
    assert report["metrics"]["tokens"] == len(ids) - 1 and report["n_examples"] == 1
    assert report["metrics"]["perplexity"] == pytest.approx(math.exp(mean_ce), rel=1e-4)
    assert report["seconds"] >= 0 and report["window"] == 64
    assert "perplexity" in out and f"{report['metrics']['perplexity']:.4f}" in out


def test_classification_writes_the_report_and_a_confusion_png(tmp_path, monkeypatch, capsys, classifier_checkpoint):
    path, model, tokenizer = classifier_checkpoint
    rows = [(LABELS[i % 3], f"the cat sat {'on the mat ' * (i % 4)}today") for i in range(12)]
    data = tmp_path / "dev.tsv"
    data.write_text("label\tsentence\n" + "".join(f"{label}\t{text}\n" for label, text in rows))
    code, out, err = run(monkeypatch, capsys, path, "--data", data, "--report", tmp_path / "r.json",
                         "--confusion-png", tmp_path / "cm.png", "--batch-size", 5)
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    expected = evaluate_classification(model, tokenizer, data)
    assert report["task"] == "classification" and report["label_names"] == LABELS
    assert report["metrics"] == pytest.approx(expected["metrics"])
    assert report["confusion_matrix"] == expected["confusion_matrix"] and report["n_examples"] == 12
    png = (tmp_path / "cm.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "cm.png").ndim == 3
    assert "accuracy" in out and "macro_f1" in out and "positive" in out


def test_generation_is_inferred_from_prompt_records(tmp_path, monkeypatch, capsys, causal_checkpoint):
    path, _, _ = causal_checkpoint
    data = tmp_path / "qa.jsonl"
    data.write_text('{"prompt": "the cat", "reference": "sat"}\n{"prompt": "the dog", "completion": "ran"}\n')
    code, out, err = run(monkeypatch, capsys, path, "--data", data, "--report", tmp_path / "g.json",
                         "--max-new-tokens", 3, "--max-examples", 1)
    assert code == 0, err
    report = json.loads((tmp_path / "g.json").read_text())
    assert report["task"] == "generation" and report["n_examples"] == 1
    assert set(report["metrics"]) == {"exact_match", "chrf", "rouge_l"}
    assert report["predictions"][0]["references"] == ["sat"]


@pytest.mark.parametrize(
    ("files", "args", "expected"),
    [
        ({}, ["--data", "{tmp}/nope.txt"], "nope.txt"),
        ({"a.txt": "hello"}, ["--data", "{tmp}/a.txt", "--task", "summarize"], "unknown task 'summarize'"),
        ({"a.xml": "<a/>"}, ["--data", "{tmp}/a.xml"], "cannot tell the task"),
        ({"a.tsv": "label\ttext\nhappy\thi\n"}, ["--data", "{tmp}/a.tsv", "--model", "classifier"],
         "a.tsv:2: label 'happy' is not in the label set"),
        ({"a.tsv": "0\thi\n"}, ["--data", "{tmp}/a.tsv"], "not a sequence classifier"),
        ({"a.txt": "hello there"}, ["--data", "{tmp}/a.txt", "--confusion-png", "{tmp}/x.png"],
         "--confusion-png applies to classification"),
        ({"a.txt": "hello there"}, ["--data", "{tmp}/a.txt", "--batch-size", "0"], "--batch-size 0"),
        ({"q.jsonl": '{"prompt": "a"}\n'}, ["--data", "{tmp}/q.jsonl"], "q.jsonl:1: the record has no reference"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys, causal_checkpoint,
                                               classifier_checkpoint, files, args, expected):
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    model = causal_checkpoint[0]
    if "--model" in args:
        model = classifier_checkpoint[0]
        args = args[:-2]
    code, out, err = run(monkeypatch, capsys, model, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert expected in err
