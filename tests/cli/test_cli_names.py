"""The commands people type from other tools: `llmos --version`, `llmos list` / `ls` for `llmos models`, a
"did you mean" for a near-miss, `llmos pull NAME` saying how to add a model offline, and `llmos run MODEL`
pointing at `llmos chat`. Every refusal is one line on stderr and exit 2."""

from __future__ import annotations

import llmos


def test_version_prints_the_package_version(llmos_cli):
    code, out, err = llmos_cli("--version")
    assert (code, out, err) == (0, f"llmos {llmos.__version__}\n", "")


def test_list_and_ls_are_llmos_models(llmos_cli, tiny_checkpoint, tmp_path, monkeypatch):
    from llmos import model_names

    monkeypatch.setattr(model_names, "EMBEDDED", {})  # reading the embedded GGUF's metadata takes seconds
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    folder = tiny_checkpoint[0].parent
    expected = llmos_cli("models", "--models-dir", folder)
    assert expected[0] == 0 and " tiny-chat " in expected[1]
    assert llmos_cli("list", "--models-dir", folder) == expected
    assert llmos_cli("ls", "--models-dir", folder) == expected


def test_a_mistyped_verb_is_one_line_with_a_suggestion(llmos_cli):
    code, out, err = llmos_cli("lst")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "'lst'" in err and "Did you mean 'list'" in err
    code, _, err = llmos_cli("sevre", "smollm2")
    assert code == 2 and err.count("\n") == 1 and "Did you mean 'serve'" in err


def test_a_bad_flag_value_is_one_line_naming_the_flag(llmos_cli):
    code, out, err = llmos_cli("generate", "smollm2", "--prompt", "hi", "--num-beams", "two")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: ") and "--num-beams" in err and "llmos generate --help" in err


def test_pull_says_how_to_add_a_model_to_the_models_folder(llmos_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOS_MODELS_DIR", str(tmp_path))
    code, out, err = llmos_cli("pull", "qwen2.5:0.5b")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "offline" in err and "GGUF" in err and "config.json" in err and str(tmp_path) in err
    assert "llmos chat qwen2.5:0.5b" in err  # what to type once the directory is there
    code, _, err = llmos_cli("pull", "HuggingFaceTB/SmolLM2-360M-Instruct")
    assert code == 2 and f"{tmp_path}/SmolLM2-360M-Instruct/" in err  # the folder holds names, not paths


def test_pull_of_a_model_already_here_says_how_to_chat_with_it(llmos_cli, tiny_checkpoint, monkeypatch):
    path, _, _ = tiny_checkpoint
    monkeypatch.setenv("LLMOS_MODELS_DIR", str(path.parent))
    code, out, err = llmos_cli("pull", path.name)
    assert code == 0 and "already" in out and f"llmos chat {path.name}" in out


def test_run_with_a_model_instead_of_a_task_points_at_chat(llmos_cli, tiny_checkpoint, monkeypatch):
    code, out, err = llmos_cli("run", "smollm2")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "llmos chat smollm2" in err and "llmos run --list" in err
    path, _, _ = tiny_checkpoint
    monkeypatch.setenv("LLMOS_MODELS_DIR", str(path.parent))
    code, _, err = llmos_cli("run", path.name)
    assert code == 2 and f"llmos chat {path.name}" in err
    code, _, err = llmos_cli("run", "smollm")  # neither a model nor a task: the list of tasks
    assert code == 2 and "unknown task 'smollm'" in err
