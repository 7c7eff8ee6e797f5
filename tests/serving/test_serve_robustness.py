"""Concurrency, back-pressure, cancellation, auth and bad input against a real server."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import openai
import pytest

from llmos.serving.api import create_app


def test_many_simultaneous_streams_get_exactly_their_solo_tokens(server):
    prompts = [f"hello {'world ' * (i % 5)}{i}" for i in range(24)]
    lengths = [3 + (i * 7) % 17 for i in range(24)]

    async def one(client, prompt, n):
        stream = await client.completions.create(model="tiny", prompt=prompt, max_tokens=n,
                                                 temperature=0, stream=True)
        return "".join([c.choices[0].text async for c in stream if c.choices])

    async def run(concurrent: bool):
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as client:
            if concurrent:
                return await asyncio.gather(*(one(client, p, n) for p, n in zip(prompts, lengths, strict=True)))
            return [await one(client, p, n) for p, n in zip(prompts, lengths, strict=True)]

    alone = asyncio.run(run(False))
    together = asyncio.run(run(True))
    assert together == alone
    assert all(len(server.tokenizer.encode(t).ids) > 0 for t in together)


def test_a_new_request_joins_a_running_batch_without_waiting_for_it_to_drain(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    long = client.completions.create(model="tiny", prompt="to be", max_tokens=110, temperature=0,
                                     stream=True)
    next(iter(long))  # the long request is decoding now
    started = time.perf_counter()
    short = client.completions.create(model="tiny", prompt="hello", max_tokens=2, temperature=0)
    short_done = time.perf_counter() - started
    rest = list(long)
    long_done = time.perf_counter() - started
    assert short.choices[0].finish_reason == "length"
    assert rest[-1].choices[0].finish_reason == "length"
    assert short_done < long_done  # served while the long one was still running


def test_full_queue_answers_429_and_the_server_recovers(tokenizer, kit):
    app = create_app(kit.build_model(tokenizer.get_vocab_size(), seed=1), tokenizer, model_id="q",
                     max_batch=1, max_queue=1)
    uv, thread, url = kit.start_server(app)
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        results, statuses = [], []

        def call():
            try:
                results.append(client.completions.create(model="q", prompt="hi", max_tokens=100,
                                                         temperature=0))
            except openai.RateLimitError as exc:
                statuses.append((exc.status_code, exc.response.headers.get("retry-after")))

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses and all(status == (429, "1") for status in statuses) and len(results) >= 1
        after = client.completions.create(model="q", prompt="hi", max_tokens=2)
        assert after.choices[0].finish_reason == "length"
        metrics = httpx.get(url + "/metrics").text
        assert 'llmos_requests_total{status="rejected_queue_full"}' in metrics
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_a_client_that_disconnects_is_cancelled_and_its_slot_freed(server):
    engine = server.app.state.llmos.engine
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", server.url + "/v1/completions",
                         json={"model": "tiny", "prompt": "hello", "max_tokens": 120, "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    break  # one chunk, then hang up
    deadline = time.time() + 10
    while engine.rows and time.time() < deadline:
        time.sleep(0.05)
    assert engine.rows == []
    assert 'llmos_requests_total{status="cancelled"}' in httpx.get(server.url + "/metrics").text


def test_api_key_is_required_on_v1_routes_only(tokenizer, kit):
    app = create_app(kit.build_model(tokenizer.get_vocab_size()), tokenizer, model_id="k", api_key="s3cret")
    uv, thread, url = kit.start_server(app)
    try:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
        assert httpx.get(url + "/v1/models").status_code == 401
        assert httpx.get(url + "/health").status_code == 200
        ok = openai.OpenAI(base_url=url + "/v1", api_key="s3cret", max_retries=0)
        assert ok.models.list().data[0].id == "k"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


BAD_BODIES = [
    (b'{"model": "tiny", "prompt": ', 400, "not valid JSON"),
    (b'{"model": "tiny", "prompt": "\xff\xfe"}', 400, "UTF-8"),
    (b'["model"]', 400, "JSON object"),
    (b'{"model": "tiny", "prompt": "hi", "max_tokens": "many"}', 400, "max_tokens"),
    (b'{"model": "tiny", "prompt": "hi", "n": 100000}', 400, "'n'"),
    (b'{"model": "tiny", "prompt": "hi", "max_tokens": 100000000}', 400, "maximum context length"),
    (b'{"model": "tiny", "prompt": "hi", "flavour": "mint"}', 400, "Unrecognized request argument"),
    (b'{"model": "tiny", "prompt": "hi", "user": "u-1", "max_tokens": 1}', 200, None),
    (b'{"model": "tiny", "prompt": []}', 400, "prompt"),
    (b'{"model": "tiny", "prompt": [999999]}', 400, "token ids"),
    (b'{"model": "../../etc/passwd", "prompt": "hi"}', 404, "does not exist"),
    (b'{"prompt": "hi"}', 400, "model"),
]


@pytest.mark.parametrize(("body", "status", "needle"), BAD_BODIES)
def test_bad_completion_bodies_get_a_clear_openai_error(server, body, status, needle):
    r = httpx.post(server.url + "/v1/completions", content=body,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    if needle is not None:
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert needle in error["message"]


BAD_CHATS = [
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "wizard"),
    ({"messages": [{"role": "user", "content": 5}]}, "content"),
    ({"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}, "logprobs"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
]


@pytest.mark.parametrize(("extra", "needle"), BAD_CHATS)
def test_bad_chat_bodies_are_400_and_the_server_keeps_serving(server, extra, needle):
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "tiny", **extra})
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]["message"]
    ok = httpx.post(server.url + "/v1/chat/completions",
                    json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert ok.status_code == 200


def test_oversized_body_is_413(server):
    r = httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": "x" * 100_000})
    assert r.status_code == 413
    assert "limit" in r.json()["error"]["message"]


def test_unknown_route_is_openai_shaped_404(server):
    r = httpx.get(server.url + "/v1/engines")
    assert r.status_code == 404 and "error" in r.json()


def test_metrics_expose_requests_tokens_queue_and_latency(server):
    httpx.post(server.url + "/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 3})
    text = httpx.get(server.url + "/metrics").text
    for name in ("llmos_requests_total", "llmos_prompt_tokens_total", "llmos_generation_tokens_total",
                 "llmos_queue_depth", "llmos_batch_size_bucket", "llmos_time_to_first_token_seconds_bucket",
                 "llmos_inter_token_latency_seconds_count", "llmos_http_responses_total"):
        assert name in text
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
