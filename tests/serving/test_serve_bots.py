"""The server under bot-shaped traffic, through a real uvicorn server: a request's greedy output does not
depend on what else runs beside it, a shared prefix is computed once, a client that leaves stops its
decoding (streamed or not), and SIGTERM ends a server mid-decode within its grace period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
import torch
from openai import OpenAI

from llmos.serving.api import create_app
from llmos.serving.sampling import SamplingParams
from llmos.tokenizer import train_tokenizer

SYSTEM = ("You are a support bot for a bicycle shop. Answer in one short sentence. Never promise a refund. "
          "Tools: look up an order by its number, check stock by part name, book a repair slot. ") * 3
PROBE = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "the quick brown fox"}]


@pytest.fixture
def fresh(tokenizer, kit):
    """A new server per test (an empty prefix cache), and its openai client."""
    model = kit.build_model(tokenizer.get_vocab_size(), max_seq_len=512)
    app = create_app(model, tokenizer, model_id="tiny", max_batch=16, max_queue=64)
    uv, thread, url = kit.start_server(app)
    yield app, url, OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
    uv.should_exit = True
    thread.join(timeout=10)


def probe(client) -> str:
    out = client.chat.completions.create(model="tiny", messages=PROBE, max_tokens=24, temperature=0)
    return out.choices[0].message.content


def metric(url: str, name: str) -> float:
    lines = httpx.get(url + "/metrics").text.splitlines()
    return float(next(line.split()[-1] for line in lines if line.startswith(name + " ")))


def beside(client, calls) -> str:
    """The probe's answer while `calls` run in threads around it."""
    threads = [threading.Thread(target=call) for call in calls]
    for t in threads:
        t.start()
    answer = probe(client)
    for t in threads:
        t.join()
    return answer


def test_a_greedy_answer_is_the_same_alone_and_beside_any_other_requests(fresh):
    app, url, client = fresh
    alone = probe(client)
    errors = []

    def sampled(i):
        return lambda: client.completions.create(model="tiny", prompt=f"hello world {i} " * (i + 1),
                                                 max_tokens=30, temperature=1.0, seed=i)

    def failing(after):  # a request whose grammar raises on its n-th token, as a bug in one row would
        def raise_late(prompt_length):
            calls = []

            def processor(history, scores):
                calls.append(1)
                if len(calls) >= after:
                    raise RuntimeError("this row's grammar failed")
                return scores
            return processor

        def call():
            done = threading.Event()

            def emit(event):
                if event.kind == "error":
                    errors.append(event.message)
                if event.kind in ("error", "done"):
                    done.set()

            app.state.llmos.engine.submit([5, 6, 7, 8], SamplingParams(max_tokens=20, constraint=raise_late), emit)
            done.wait(30)
        return call

    def structured():
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "to be or not"}],
                                       max_tokens=20, temperature=0, response_format={
                                           "type": "json_schema", "json_schema": {"name": "y", "schema": {
                                               "type": "object", "properties": {"n": {"type": "integer"}}}}})

    def tools():
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "a journey"}],
                                       max_tokens=20, temperature=0, tool_choice="required", tools=[{
                                           "type": "function", "function": {"name": "stock", "parameters": {
                                               "type": "object", "properties": {"part": {"type": "string"}}}}}])

    assert beside(client, [sampled(i) for i in range(15)]) == alone
    assert beside(client, [failing(1), failing(5)]) == alone
    assert len(errors) == 2
    assert beside(client, [structured, tools, structured, tools]) == alone


def test_a_shared_system_prompt_is_computed_once_and_answers_as_if_computed_fresh(fresh, tokenizer, kit):
    app, url, client = fresh
    first = probe(client)
    cached_before = metric(url, "llmos_prompt_tokens_cached_total")
    other = [*PROBE[:1], {"role": "user", "content": "hello server"}]
    second = client.chat.completions.create(model="tiny", messages=other, max_tokens=24, temperature=0)
    reused = metric(url, "llmos_prompt_tokens_cached_total") - cached_before
    assert reused >= 16 * (len(tokenizer.encode(SYSTEM).ids) // 16) - 16  # the system prompt's whole blocks
    assert probe(client) == first  # the cached blocks answer as the computed ones did
    model = app.state.llmos.engine.model
    served = app.state.llmos.tokenizer
    prompt = served.encode(served.render_chat(other))
    expected = model.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False)[0, len(prompt):]
    assert second.choices[0].message.content == served.decode(expected.tolist())


def test_a_client_that_leaves_a_non_streamed_request_stops_its_decoding(fresh, monkeypatch):
    app, url, client = fresh
    engine = app.state.llmos.engine
    decode = engine._decode

    def slow_decode(rows):  # the tiny model would finish before the client gives up
        time.sleep(0.02)
        decode(rows)

    monkeypatch.setattr(engine, "_decode", slow_decode)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/completions", timeout=0.5,
                   json={"model": "tiny", "prompt": "hello", "max_tokens": 400, "temperature": 0})
    deadline = time.time() + 3
    while engine.rows and time.time() < deadline:
        time.sleep(0.02)
    assert engine.rows == [] and engine.blocks.used() == 0
    assert metric(url, "llmos_generation_tokens_total") < 100  # stopped long before its 400 tokens


def test_sigterm_ends_a_server_mid_decode_within_its_grace_period(tmp_path, kit):
    tokenizer = train_tokenizer(kit.corpus, kind="bpe", vocab_size=300, special_tokens=kit.specials)
    model = kit.build_model(len(tokenizer), max_seq_len=20000, seed=3)
    model.save_pretrained(tmp_path / "long", tokenizer=tokenizer)
    port = kit.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llmos.cli.main", "serve", str(tmp_path / "long"), "--port",
                             str(port), "--shutdown-grace", "1"], stderr=subprocess.PIPE,
                            env={**os.environ, "LLMOS_COMPILE": "0"})
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert proc.poll() is None and time.time() < deadline
                time.sleep(0.2)
        received = []
        with pytest.raises(httpx.RemoteProtocolError):  # the stream is cut once the grace is over
            with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/completions", timeout=30, json={
                    "model": "long", "prompt": "hello", "max_tokens": 19000, "stream": True}) as response:
                for line in response.iter_lines():
                    received.append(line)
                    if len(received) == 5:
                        sent = time.time()
                        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) is not None
        assert time.time() - sent < 8  # the 1 s grace, then the stream is cut and the process exits
        assert len(received) < 19000
    finally:
        if proc.poll() is None:
            proc.kill()
