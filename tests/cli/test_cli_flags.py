"""The flag names of vLLM, llama-server and Ollama work as aliases (`serve --max-num-seqs/--parallel`,
`--served-model-name/--alias`, `chat --max-new-tokens`, `generate --max-tokens`), `--threads`/`-t` sets torch's
thread count, `--chat-template FILE` replaces the model's template, and numbers out of range are one line and
exit 2 before the model loads. `llmos serve` runs to the point of starting uvicorn, which records the app."""

from __future__ import annotations

import io
import sys

import pytest
import torch

TEMPLATE = ("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}[assistant] {% endif %}")


@pytest.fixture
def threads_kept():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def started(monkeypatch):
    """What `llmos serve` handed to uvicorn.run: the app, the port, and torch's thread count then."""
    import uvicorn

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **_: seen.update(
        app=app, port=port, threads=torch.get_num_threads()))
    return seen


@pytest.fixture
def template_file(tmp_path):
    path = tmp_path / "template.jinja"
    path.write_text(TEMPLATE)
    return path


@pytest.mark.parametrize("batch_flag, name_flag", [("--max-num-seqs", "--served-model-name"),
                                                   ("--parallel", "--alias")])
def test_serve_takes_vllm_and_llama_server_flag_names(llmos_cli, tiny_checkpoint, started, threads_kept,
                                                      batch_flag, name_flag):
    path, _, _ = tiny_checkpoint
    code, _, err = llmos_cli("serve", path, batch_flag, 3, name_flag, "tiny", "--port", 8123)
    assert code == 0, err
    state = started["app"].state.llmos
    assert (state.engine.max_batch, state.model_id, started["port"]) == (3, "tiny", 8123)
    assert "up to 3 requests at once" in err


def test_serve_threads_and_chat_template(llmos_cli, tiny_checkpoint, started, threads_kept, template_file):
    path, _, _ = tiny_checkpoint
    code, _, err = llmos_cli("serve", path, "-t", 2, "--chat-template", template_file)
    assert code == 0, err
    assert started["threads"] == 2
    prompt = started["app"].state.llmos.tokenizer.render_chat([{"role": "user", "content": "hi"}])
    assert prompt == "[user] hi\n[assistant] "


@pytest.mark.parametrize("flags, named", [
    (["--port", 70000], "--port"), (["--port", 0], "--port"), (["--max-batch", 0], "--max-batch"),
    (["--max-queue", 0], "--max-queue"), (["--threads", 0], "--threads"), (["--max-body-kb", 0], "--max-body-kb"),
])
def test_serve_refuses_numbers_out_of_range_before_loading(llmos_cli, flags, named, monkeypatch):
    import llmos.generation.loading

    monkeypatch.setattr(llmos.generation.loading, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    code, out, err = llmos_cli("serve", "smollm2", *flags)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: ") and named in err and "Traceback" not in err


@pytest.mark.parametrize("verb", ["serve", "chat"])
def test_a_missing_or_broken_chat_template_is_one_line_before_loading(llmos_cli, tmp_path, verb):
    code, _, err = llmos_cli(verb, tmp_path / "no-model", "--chat-template", tmp_path / "missing.jinja")
    assert code == 2 and err.count("\n") == 1 and "--chat-template" in err and "missing.jinja" in err
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}")
    code, _, err = llmos_cli(verb, tmp_path / "no-model", "--chat-template", broken)
    assert code == 2 and err.count("\n") == 1 and "broken.jinja" in err and "does not compile" in err


def _chat(llmos_cli, monkeypatch, *args) -> tuple[int, str, str, list]:
    """`llmos chat ARGS` saying "hello" once; also returns the (prompt ids, params) the engine was given."""
    from llmos.serving.engine import Engine

    submitted, submit = [], Engine.submit
    monkeypatch.setattr(Engine, "submit", lambda self, prompt, params, emit: (
        submitted.append((prompt, params)), submit(self, prompt, params, emit))[1])
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n/exit\n"))
    return (*llmos_cli("chat", *args), submitted)


def test_chat_takes_max_new_tokens_threads_and_a_chat_template(llmos_cli, tiny_checkpoint, monkeypatch,
                                                                threads_kept, template_file):
    path, _, tokenizer = tiny_checkpoint
    code, out, err, submitted = _chat(llmos_cli, monkeypatch, path, "--max-new-tokens", 3, "--temperature", 0,
                                      "-t", 2, "--chat-template", template_file)
    assert code == 0, err
    (prompt, params), = submitted
    assert params.max_tokens == 3 and torch.get_num_threads() == 2
    assert tokenizer.decode(prompt) == "[user] hello\n[assistant] "
    code, _, err, submitted = _chat(llmos_cli, monkeypatch, path, "--max-tokens", 4, "--temperature", 0)
    assert code == 0, err
    assert submitted[0][1].max_tokens == 4


def test_generate_takes_max_tokens_and_threads(llmos_cli, tiny_checkpoint, threads_kept):
    path, model, tokenizer = tiny_checkpoint
    ids = torch.tensor([tokenizer.encode("the cat")])
    expected = tokenizer.decode(model.generate(ids, max_new_tokens=4)[0].tolist(), skip_special_tokens=True)
    for flag in ("--max-tokens", "--max-new-tokens"):
        code, out, err = llmos_cli("generate", path, "-p", "the cat", flag, 4, "-t", 2)
        assert code == 0, err
        assert out == expected + "\n" and torch.get_num_threads() == 2
