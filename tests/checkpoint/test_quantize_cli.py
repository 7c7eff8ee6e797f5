"""`llmos quantize SOURCE OUT --to int8|int4` and `llmos convert` of its output, through the real CLI entry point."""

import json
import sys

import pytest
import torch
from gguf_models import write_gguf_model

from llmos import AutoModelForCausalLM
from llmos.cli import main
from llmos.config import ModelConfig
from llmos.kernels import Int4Linear
from llmos.model import CausalLM


def llmos(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run `llmos ARGS` in-process as the console script does; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["llmos", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main.main()
    out = capsys.readouterr()
    return info.value.code or 0, out.out, out.err


@pytest.fixture
def float_checkpoint(tmp_path):
    torch.manual_seed(0)
    CausalLM(ModelConfig.from_preset("micro", d_model=64, vocab_size=96)).save_pretrained(tmp_path / "float")
    return tmp_path / "float"


def test_quantize_writes_a_checkpoint_that_loads_into_the_int4_kernel(tmp_path, monkeypatch, capsys,
                                                                       float_checkpoint):
    code, out, err = llmos(monkeypatch, capsys, "quantize", float_checkpoint, tmp_path / "q", "--to", "int4")
    assert code == 0, err
    assert out.startswith(f"wrote int4 checkpoint to {tmp_path / 'q'}")
    assert json.loads((tmp_path / "q" / "config.json").read_text())["quantization"]["method"] == "int4"
    assert isinstance(AutoModelForCausalLM.from_pretrained(tmp_path / "q").lm_head, Int4Linear)


def test_quantize_takes_a_gguf_file(tmp_path, monkeypatch, capsys):
    path = write_gguf_model(tmp_path, "llama", "Q4_1")
    code, _, err = llmos(monkeypatch, capsys, "quantize", path, tmp_path / "q", "--to", "int8")
    assert code == 0, err
    assert (tmp_path / "q" / "tokenizer.json").is_file()


def _one_line_exit_2(code: int, err: str) -> None:
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1


def test_an_unknown_to_value_names_the_choices(tmp_path, monkeypatch, capsys, float_checkpoint):
    code, _, err = llmos(monkeypatch, capsys, "quantize", float_checkpoint, tmp_path / "q", "--to", "fp8")
    _one_line_exit_2(code, err)
    assert "'fp8'" in err and "['int8', 'int4']" in err
    assert not (tmp_path / "q").exists()


def test_quantizing_twice_is_one_line_naming_the_method(tmp_path, monkeypatch, capsys, float_checkpoint):
    assert llmos(monkeypatch, capsys, "quantize", float_checkpoint, tmp_path / "q", "--to", "int8")[0] == 0
    code, _, err = llmos(monkeypatch, capsys, "quantize", tmp_path / "q", tmp_path / "q2", "--to", "int4")
    _one_line_exit_2(code, err)
    assert "already quantized (int8)" in err and "float checkpoint" in err


def test_a_missing_source_is_one_line(tmp_path, monkeypatch, capsys):
    code, _, err = llmos(monkeypatch, capsys, "quantize", tmp_path / "nope", tmp_path / "q", "--to", "int8")
    _one_line_exit_2(code, err)
    assert "nope" in err


def test_convert_to_hf_of_a_quantized_checkpoint_is_one_line(tmp_path, monkeypatch, capsys, float_checkpoint):
    assert llmos(monkeypatch, capsys, "quantize", float_checkpoint, tmp_path / "q", "--to", "int4")[0] == 0
    code, _, err = llmos(monkeypatch, capsys, "convert", tmp_path / "q", tmp_path / "hf", "--to", "hf")
    _one_line_exit_2(code, err)
    assert "int4-quantized" in err and "float checkpoint" in err
