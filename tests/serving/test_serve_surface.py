"""The routes around generation, through a real server: /tokenize and /detokenize (vLLM's shapes),
/version, x-request-id on every response, /openapi.json and an offline /docs page."""

from __future__ import annotations

import re

import httpx
import openai

import llmos


def test_tokenize_a_prompt_gives_the_ids_completions_would_use(server):
    r = httpx.post(server.url + "/tokenize", json={"model": "tiny", "prompt": "hello world"})
    assert r.status_code == 200
    body = r.json()
    ids = server.tokenizer.encode("hello world").ids
    assert body["tokens"] == ids and body["count"] == len(ids)
    assert body["max_model_len"] == server.app.state.llmos.engine.max_len
    assert body.get("token_strs") is None
    usage = httpx.post(server.url + "/v1/completions",
                       json={"model": "tiny", "prompt": "hello world", "max_tokens": 1}).json()["usage"]
    assert usage["prompt_tokens"] == body["count"]


def test_tokenize_can_return_the_token_strings(server):
    r = httpx.post(server.url + "/tokenize", json={"prompt": "hello world", "return_token_strs": True})
    body = r.json()
    assert len(body["token_strs"]) == body["count"]
    assert "".join(body["token_strs"]).replace("Ġ", " ") == "hello world"


def test_tokenize_chat_messages_counts_the_chat_prompt(server):
    messages = [{"role": "user", "content": "to be or not to be"}]
    r = httpx.post(server.url + "/tokenize", json={"model": "tiny", "messages": messages})
    assert r.status_code == 200
    usage = httpx.post(server.url + "/v1/chat/completions",
                       json={"model": "tiny", "messages": messages, "max_tokens": 1}).json()["usage"]
    assert r.json()["count"] == usage["prompt_tokens"]


def test_detokenize_inverts_tokenize(server):
    ids = httpx.post(server.url + "/tokenize", json={"prompt": "the quick brown fox"}).json()["tokens"]
    r = httpx.post(server.url + "/detokenize", json={"model": "tiny", "tokens": ids})
    assert r.status_code == 200 and r.json() == {"prompt": "the quick brown fox"}


def test_tokenize_and_detokenize_reject_bad_input_with_400(server):
    vocab = server.tokenizer.get_vocab_size()
    bad = [("/detokenize", {"tokens": [vocab]}), ("/detokenize", {"tokens": [-1]}),
           ("/tokenize", {"prompt": "x", "messages": [{"role": "user", "content": "x"}]}),
           ("/tokenize", {"prompt": "x", "nonsense": 1}), ("/tokenize", {})]
    for path, body in bad:
        r = httpx.post(server.url + path, json=body)
        assert r.status_code == 400, (path, body, r.text)
        assert r.json()["error"]["message"]
    r = httpx.post(server.url + "/tokenize", json={"model": "other", "prompt": "x"})
    assert r.status_code == 404


def test_version_names_the_llmos_version(server):
    r = httpx.get(server.url + "/version")
    assert r.status_code == 200 and r.json()["version"] == llmos.__version__


def test_every_response_carries_an_x_request_id(server):
    seen = set()
    for method, path in [("GET", "/health"), ("GET", "/v1/models"), ("GET", "/nowhere"),
                         ("POST", "/v1/completions"), ("GET", "/metrics")]:
        r = httpx.request(method, server.url + path, json={} if method == "POST" else None)
        rid = r.headers.get("x-request-id")
        assert rid and re.fullmatch(r"[0-9a-f]{32}", rid), (path, r.headers)
        seen.add(rid)
    assert len(seen) == 5


def test_a_client_request_id_is_echoed_and_names_the_completion(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    raw = client.completions.with_raw_response.create(
        model="tiny", prompt="hi", max_tokens=2, extra_headers={"x-request-id": "trace-42"})
    assert raw.headers["x-request-id"] == "trace-42"
    assert raw.parse().id == "cmpl-trace-42"
    raw = client.chat.completions.with_raw_response.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2,
        extra_headers={"x-request-id": "trace-43"})
    assert raw.headers["x-request-id"] == "trace-43" and raw.parse().id == "chatcmpl-trace-43"
    with httpx.stream("POST", server.url + "/v1/completions", headers={"x-request-id": "trace-44"},
                      json={"model": "tiny", "prompt": "hi", "max_tokens": 2, "stream": True}) as r:
        assert r.headers["x-request-id"] == "trace-44"
        assert '"id": "cmpl-trace-44"' in r.read().decode()


def test_openapi_publishes_the_request_and_response_schemas(server):
    r = httpx.get(server.url + "/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    for path in ("/v1/completions", "/v1/chat/completions", "/v1/models", "/tokenize", "/detokenize",
                 "/version", "/health"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    for name in ("CompletionRequest", "ChatCompletionRequest", "CompletionResponse",
                 "ChatCompletionResponse", "ErrorResponse", "TokenizeResponse"):
        assert name in schemas, name
    post = spec["paths"]["/v1/completions"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("CompletionRequest")
    assert "prompt" in schemas["CompletionRequest"]["required"]
    assert schemas["CompletionRequest"]["additionalProperties"] is False
    assert {"400", "404", "429"} <= set(post["responses"])


def test_docs_page_works_offline(server):
    r = httpx.get(server.url + "/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    for asset in assets:
        assert httpx.get(server.url + asset).status_code == 200, asset


def test_an_unexpected_500_carries_the_request_id(server, monkeypatch):
    def broken(text):
        raise RuntimeError("bug")

    monkeypatch.setattr(server.app.state.llmos.tokenizer, "encode", broken)
    r = httpx.post(server.url + "/tokenize", json={"prompt": "hi"}, headers={"x-request-id": "bug-1"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "bug-1"
    assert "bug" not in r.json()["error"]["message"]  # no internals leak
