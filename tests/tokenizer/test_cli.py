"""`llmos tokenizer train` writes a loadable tokenizer and turns bad input into one line + exit 2."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from llmos.cli.main import app
from llmos.errors import LLMOSError
from llmos.tokenizer import Tokenizer

from .conftest import CORPUS


def test_train_writes_a_tokenizer_directory_and_prints_one_summary_line(tmp_path):
    corpus = tmp_path / "a.txt"
    corpus.write_text("\n".join(CORPUS), encoding="utf-8")
    out = tmp_path / "tok"
    result = CliRunner().invoke(
        app,
        [
            "tokenizer",
            "train",
            str(corpus),
            "--kind",
            "wordpiece",
            "--vocab-size",
            "150",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 1 and "wordpiece" in result.output
    tok = Tokenizer.from_pretrained(out)
    assert tok.cls_token == "[CLS]" and len(tok) <= 150


def _llmos(*args: str) -> subprocess.CompletedProcess:
    code = (
        "import sys; from llmos.cli.main import main; sys.argv = ['llmos', *sys.argv[1:]]; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def test_bad_input_prints_one_error_line_and_exits_2(tmp_path):
    corpus = tmp_path / "a.txt"
    corpus.write_text("hello world\n", encoding="utf-8")
    result = _llmos(
        "tokenizer", "train", str(corpus), "--kind", "unigram", "--out", str(tmp_path / "o")
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "bpe, wordpiece, char" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_missing_training_file_is_an_llmos_error_naming_it(tmp_path):
    missing = tmp_path / "missing.txt"
    result = CliRunner().invoke(
        app, ["tokenizer", "train", str(missing), "--out", str(tmp_path / "o")]
    )
    assert isinstance(result.exception, LLMOSError) and "missing.txt" in str(result.exception)
    assert not (tmp_path / "o").exists()
