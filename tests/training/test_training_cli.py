"""`llmos pretrain` and `llmos quickstart` end to end on a tiny corpus, and their bad-input answers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from llmos.cli.main import app

TEXT = "\n\n".join(
    f"Section {i}. The function returns the value of the argument, or None if it is missing. "
    f"Use the module to read files line by line; each line ends with a newline. Example {i}: x = f({i})"
    for i in range(120)
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from llmos.data import prepare

    root = tmp_path_factory.mktemp("corpus")
    _write_docs(root / "docs")
    out = root / "shards"
    prepare([root / "docs"], out, vocab_size=300, val_fraction=0.2, progress=False)
    return out


def _write_docs(folder):
    folder.mkdir()
    for i, paragraph in enumerate(TEXT.split("\n\n")):
        (folder / f"doc{i:03d}.txt").write_text(paragraph + "\n")


def _llmos(*args: str) -> subprocess.CompletedProcess:
    code = "from llmos.cli.main import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_pretrain_reads_a_recipe_applies_overrides_and_writes_the_run(tmp_path, data_dir):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data_dir: {data_dir}\nmodel: micro\ncontext: 32\nbatch_size: 4\nmax_steps: 50\n"
                      "eval_every: 2\neval_batches: 2\nlog_every: 1\nprogress: false\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["pretrain", "--config", str(recipe), "--max-steps", "3",
                                      "--out-dir", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "validation loss" in result.output
    saved = (out / "recipe.yaml").read_text()
    assert "max_steps: 3" in saved and "context: 32" in saved
    state = json.loads((out / "last" / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["data_state"]["index"] > 0
    assert (out / "best" / "tokenizer.json").is_file()  # the checkpoint is complete for generate/chat


def test_pretrain_resumes_from_the_last_checkpoint(tmp_path, data_dir):
    common = ["pretrain", "--data-dir", str(data_dir), "--out-dir", str(tmp_path), "--context", "32",
              "--batch-size", "4", "--max-steps", "4", "--eval-every", "0", "--no-progress"]
    CliRunner().invoke(app, [*common, "--stop-at-step", "2"], catch_exceptions=False)
    result = CliRunner().invoke(app, [*common, "--resume", "auto"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    steps = [r["step"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
             if r["kind"] == "train"]
    assert steps[-1] == 4 and json.loads((tmp_path / "last" / "trainer_state.json").read_text())["step"] == 4


def test_a_recipe_with_unknown_keys_exits_2_listing_valid_keys(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_step: 3\n")
    result = _llmos("pretrain", "--config", str(recipe))
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown recipe key(s) ['max_step']")
    assert "'max_steps'" in result.stderr and "Traceback" not in result.stderr


def test_a_context_longer_than_the_position_table_exits_2(tmp_path, data_dir):
    result = _llmos("pretrain", "--data-dir", str(data_dir), "--out-dir", str(tmp_path),
                    "--context", "4096", "--no-progress")
    assert result.returncode == 2
    assert "context=4096" in result.stderr and "max_seq_len=128" in result.stderr


def test_training_options_without_train_are_one_line_naming_it(tmp_path):
    result = _llmos("quickstart", "--data", str(tmp_path), "--minutes", "1")
    assert result.returncode == 2 and "--data, --minutes belong to the training tour; add --train" in result.stderr


def test_quickstart_on_an_empty_corpus_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_text("\n\n")
    result = _llmos("quickstart", "--train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "error:" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_quickstart_trains_samples_and_saves_a_loadable_checkpoint(tmp_path):
    _write_docs(tmp_path / "docs")
    out = tmp_path / "qs"
    result = CliRunner().invoke(app, ["quickstart", "--train", "--data", str(tmp_path / "docs"), "--out", str(out),
                                      "--max-steps", "3", "--vocab-size", "300", "--context", "32",
                                      "--batch-size", "4", "--sample-tokens", "4"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "perplexity" in result.output and "sample:" in result.output
    assert f"llmos generate {out}" in result.output and f"llmos serve {out}" in result.output
    from llmos.auto import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.max_seq_len >= 512 and (out / "tokenizer.json").is_file()
    for kept in ("metrics.jsonl", "loss_curve.png", "recipe.yaml", "best", "last", "data"):
        assert (out / kept).exists(), kept
