"""Hostile or unusual requests against a real server: each gets its own clear answer, and none of
them can fail another request, drop the connection or break the server (issue 13)."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
from urllib.parse import urlsplit

import httpx
import openai
import pytest
import torch
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from llmos.serving.engine import QueueFullError

CHAT = {"messages": [{"role": "user", "content": "hello"}]}


def post(server, path: str, body: dict | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + path, content=content, headers={"Content-Type": "application/json"},
                      timeout=30)


def assert_openai_error(response: httpx.Response, status: int, *needles: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    for needle in needles:
        assert needle in error["message"], error["message"]
    return error


# ---- item 1: one request's sampling never affects another's -----------------------------------


def test_a_tiny_temperature_is_greedy_and_a_neighbouring_stream_completes(client, server):
    stream = client.completions.create(model="tiny", prompt="to be", max_tokens=100, temperature=0,
                                       stream=True)
    chunks = iter(stream)
    first = next(chunks)  # the stream is decoding now: the hostile request joins its batch
    hostile = post(server, "/v1/completions", {"model": "tiny", "prompt": "hello", "max_tokens": 6,
                                               "temperature": 1e-40})
    greedy = post(server, "/v1/completions", {"model": "tiny", "prompt": "hello", "max_tokens": 6,
                                              "temperature": 0})
    rest = list(chunks)
    assert hostile.status_code == 200, hostile.text
    assert hostile.json()["choices"][0]["text"] == greedy.json()["choices"][0]["text"]
    assert rest[-1].choices[0].finish_reason == "length"
    text = first.choices[0].text + "".join(c.choices[0].text for c in rest)
    alone = client.completions.create(model="tiny", prompt="to be", max_tokens=100, temperature=0)
    assert text == alone.choices[0].text


# ---- item 2: values that broke the server are 400s naming the problem -------------------------

NESTED = b'{"model": "tiny", "prompt": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"


@pytest.mark.parametrize(("path", "body", "needles"), [
    ("/v1/completions", {"model": "tiny", "prompt": "hi", "seed": 2**64}, ["'seed'", "9223372036854775807"]),
    ("/v1/completions", {"model": "tiny", "prompt": "hi", "seed": -2**63 - 1}, ["'seed'"]),
    ("/v1/chat/completions", {"model": "tiny", "seed": 2**63, **CHAT}, ["'seed'"]),
    ("/v1/completions", {"model": "tiny", "prompt": "a\ud800"}, ["'prompt'", "surrogate"]),
    ("/v1/completions", {"model": "tiny", "prompt": ["ok", "b\udfff"]}, ["'prompt[1]'", "surrogate"]),
    ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x\ud83d"}]},
     ["'messages[0].content'", "surrogate"]),
    ("/v1/completions", NESTED, ["nested"]),
])
def test_values_that_cannot_be_served_are_400_naming_the_problem(server, path, body, needles):
    error = assert_openai_error(post(server, path, body), 400, *needles)
    assert error["type"] == "invalid_request_error"


def test_seeds_at_the_ends_of_the_int64_range_are_served(client):
    for seed in (2**63 - 1, -2**63):
        out = client.completions.create(model="tiny", prompt="hi", max_tokens=3, n=2, seed=seed)
        assert [c.finish_reason for c in out.choices] == ["length", "length"]


# ---- item 3: a failed request never costs the client its keep-alive connection ----------------


def exchange(connection: http.client.HTTPConnection, body: dict | bytes) -> tuple[int, dict, str | None]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection.request("POST", "/v1/completions", body=content, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read()), response.getheader("connection")


@pytest.mark.parametrize("hostile", [
    {"model": "tiny", "prompt": "hi", "seed": 2**64},
    {"model": "tiny", "prompt": "a\ud800"},
    NESTED,
])
def test_a_hostile_request_leaves_the_keep_alive_connection_usable(server, hostile):
    connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=30)
    try:
        status, _, _ = exchange(connection, hostile)
        assert status == 400
        status, body, _ = exchange(connection, {"model": "tiny", "prompt": "hi", "max_tokens": 2})
        assert status == 200 and body["choices"][0]["finish_reason"] == "length"
    finally:
        connection.close()


def test_an_unexpected_500_still_leaves_the_connection_usable(server, monkeypatch):
    tokenizer = server.app.state.llmos.tokenizer

    def broken(text: str) -> list[int]:
        raise RuntimeError("simulated bug")

    connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=30)
    try:
        monkeypatch.setattr(tokenizer, "encode", broken)
        status, body, closing = exchange(connection, {"model": "tiny", "prompt": "hi"})
        assert status == 500 and body["error"]["type"] == "server_error"
        monkeypatch.undo()
        if closing != "close":  # the server kept the connection: it must work
            status, body, _ = exchange(connection, {"model": "tiny", "prompt": "hi", "max_tokens": 2})
        assert status == 200
    finally:
        connection.close()


def test_a_bug_inside_a_stream_ends_it_with_an_error_event_and_keeps_the_connection(server, monkeypatch):
    tokenizer = server.app.state.llmos.tokenizer

    def broken(token_id: int) -> str:
        raise RuntimeError("simulated bug")

    connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=30)
    try:
        monkeypatch.setattr(tokenizer, "token_text", broken)  # used for streamed logprobs
        body = {"model": "tiny", "prompt": "hi", "max_tokens": 3, "logprobs": 1, "stream": True}
        connection.request("POST", "/v1/completions", body=json.dumps(body),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        events = [line for line in response.read().decode().split("\n\n") if line]
        assert response.status == 200
        assert json.loads(events[-2].removeprefix("data: "))["error"]["type"] == "server_error"
        assert events[-1] == "data: [DONE]"
        monkeypatch.undo()
        status, body, _ = exchange(connection, {"model": "tiny", "prompt": "hi", "max_tokens": 2})
        assert status == 200
    finally:
        connection.close()


def test_the_openai_client_without_retries_survives_a_rejected_request(client):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="hi", seed=2**64)
    out = client.completions.create(model="tiny", prompt="hi", max_tokens=2)
    assert out.choices[0].finish_reason == "length"


# ---- item 4: requests that can never fit, 429 and 405 headers ----------------------------------


def test_more_sequences_than_the_queue_holds_is_400_naming_the_limit(server):
    error = assert_openai_error(post(server, "/v1/completions",
                                     {"model": "tiny", "prompt": ["hi"] * 80, "max_tokens": 1}),
                                400, "80", "64")
    assert error["param"] == "prompt"
    error = assert_openai_error(post(server, "/v1/completions",
                                     {"model": "tiny", "prompt": ["hi"] * 8, "n": 9, "max_tokens": 1}),
                                400, "72", "64")
    assert error["param"] == "n"
    ok = post(server, "/v1/completions", {"model": "tiny", "prompt": ["hi"] * 64, "max_tokens": 1})
    assert ok.status_code == 200 and len(ok.json()["choices"]) == 64


def test_a_full_queue_is_429_with_retry_after(server, monkeypatch):
    def full(*args, **kwargs):
        raise QueueFullError("the server is busy: 64 requests are waiting (max_queue=64); retry later")

    monkeypatch.setattr(server.app.state.llmos.engine, "submit", full)
    response = post(server, "/v1/completions", {"model": "tiny", "prompt": "hi"})
    assert_openai_error(response, 429, "busy")
    assert int(response.headers["retry-after"]) >= 1


def test_a_wrong_method_is_405_with_allow(server):
    response = httpx.get(server.url + "/v1/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "use POST" in response.json()["error"]["message"]


# ---- item 5: null means the default; an empty prompt starts a new document ---------------------

NULLABLE_COMMON = ["temperature", "top_p", "n", "stop", "seed", "stream", "stream_options", "user",
                   "presence_penalty", "frequency_penalty", "logit_bias", "max_tokens"]


def test_null_optional_fields_take_their_defaults_in_completions(server):
    nulls = dict.fromkeys(NULLABLE_COMMON + ["logprobs", "echo", "best_of", "suffix"])
    response = post(server, "/v1/completions", {"model": "tiny", "prompt": "hi", **nulls})
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["logprobs"] is None
    assert response.json()["usage"]["completion_tokens"] == 16  # max_tokens null: OpenAI's default


def test_null_optional_fields_take_their_defaults_in_chat(server):
    nulls = dict.fromkeys(NULLABLE_COMMON + ["logprobs", "top_logprobs", "max_completion_tokens",
                                             "response_format", "tools", "tool_choice",
                                             "parallel_tool_calls"])
    response = post(server, "/v1/chat/completions", {"model": "tiny", **CHAT, **nulls})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["role"] == "assistant"


def test_an_empty_prompt_generates_from_the_start_of_a_document(client, server):
    out = client.completions.create(model="tiny", prompt="", max_tokens=4, temperature=0)
    assert out.usage.prompt_tokens == 1  # the start token stands in for the empty context
    assert out.choices[0].finish_reason == "length" and out.usage.completion_tokens == 4
    listed = client.completions.create(model="tiny", prompt=["", "hi"], max_tokens=2, temperature=0)
    assert len(listed.choices) == 2
    null = post(server, "/v1/completions", {"model": "tiny", "prompt": None, "max_tokens": 4, "temperature": 0})
    assert null.status_code == 200, null.text  # OpenAI's spec: prompt is nullable, "<|endoftext|>" by default
    assert null.json()["choices"][0]["text"] == out.choices[0].text


# ---- item 7: min_p and repetition_penalty ------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
@pytest.mark.parametrize(("field", "value", "needle"), [
    ("min_p", 1.5, "[0, 1]"), ("min_p", -0.1, "[0, 1]"),
    ("repetition_penalty", 0, "[0.01, 100]"), ("repetition_penalty", -1.0, "[0.01, 100]"),
    ("repetition_penalty", 1e-300, "[0.01, 100]"), ("repetition_penalty", 1e300, "[0.01, 100]"),
])
def test_extra_sampling_fields_out_of_range_are_400_naming_the_range(server, path, field, value, needle):
    body = {"model": "tiny", field: value, **({"prompt": "hi"} if path == "/v1/completions" else CHAT)}
    error = assert_openai_error(post(server, path, body), 400, field, needle)
    assert error["param"] == field


def reference_greedy_with_penalty(model, prompt: list[int], n: int, penalty: float) -> list[int]:
    processor = RepetitionPenaltyLogitsProcessor(penalty)
    ids = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(n):
            scores = processor(ids, model(ids).logits[:, -1].float())
            ids = torch.cat([ids, scores.argmax(-1, keepdim=True)], dim=1)
    return ids[0, len(prompt):].tolist()


def test_repetition_penalty_matches_transformers_in_both_endpoints(server):
    prompt = "hello world"
    ids = server.tokenizer.encode(prompt).ids
    expected = server.tokenizer.decode(reference_greedy_with_penalty(server.model, ids, 24, 3.0))
    plain = post(server, "/v1/completions", {"model": "tiny", "prompt": prompt, "max_tokens": 24,
                                             "temperature": 0}).json()["choices"][0]["text"]
    assert plain != expected  # the penalty changes this answer, so the comparison means something
    penalized = post(server, "/v1/completions", {"model": "tiny", "prompt": prompt, "max_tokens": 24,
                                                 "temperature": 0, "repetition_penalty": 3.0})
    assert penalized.status_code == 200, penalized.text
    assert penalized.json()["choices"][0]["text"] == expected
    chat = post(server, "/v1/chat/completions", {"model": "tiny", **CHAT, "max_tokens": 4,
                                                 "temperature": 0, "repetition_penalty": 3.0})
    assert chat.status_code == 200, chat.text


def test_min_p_one_keeps_only_the_most_likely_token_in_both_endpoints(server):
    for path, body in (("/v1/completions", {"prompt": "to be"}), ("/v1/chat/completions", CHAT)):
        common = {"model": "tiny", **body, "max_tokens": 10}
        greedy = post(server, path, {**common, "temperature": 0})
        sampled = post(server, path, {**common, "temperature": 2.0, "seed": 7, "min_p": 1.0})
        free = post(server, path, {**common, "temperature": 2.0, "seed": 7, "min_p": 0.0})
        assert sampled.status_code == 200, sampled.text
        answer = {"/v1/completions": lambda r: r.json()["choices"][0]["text"],
                  "/v1/chat/completions": lambda r: r.json()["choices"][0]["message"]["content"]}[path]
        assert answer(sampled) == answer(greedy)
        assert answer(free) != answer(greedy)  # at temperature 2 without min_p it does sample


def test_the_openai_client_sends_the_extra_sampling_fields_through_extra_body(client):
    common = {"model": "tiny", "max_tokens": 6, "temperature": 1.5, "seed": 3}
    greedy = client.chat.completions.create(**{**common, "temperature": 0}, **CHAT)
    kept = client.chat.completions.create(**common, **CHAT, extra_body={"min_p": 1.0, "repetition_penalty": 1.0})
    assert kept.choices[0].message.content == greedy.choices[0].message.content
    with pytest.raises(openai.BadRequestError, match=r"\[0, 1\]"):
        client.completions.create(model="tiny", prompt="hi", extra_body={"min_p": 3})


# ---- checks across fields name the field they are about ---------------------------------------


@pytest.mark.parametrize("path,body,param", [
    ("/v1/completions", {"prompt": "hi", "presence_penalty": 0.5}, "presence_penalty"),
    ("/v1/completions", {"prompt": "hi", "suffix": "end"}, "suffix"),
    ("/v1/chat/completions", {**CHAT, "top_logprobs": 2}, "top_logprobs"),
    ("/v1/chat/completions", {**CHAT, "response_format": {"type": "yaml"}}, "response_format"),
])
def test_a_check_across_fields_names_its_field_and_value(server, path, body, param):
    error = assert_openai_error(post(server, path, {"model": "tiny", **body}), 400, f"'{param}'")
    assert error["param"] == param
    assert json.dumps(body[param]) in error["message"]
    assert "''" not in error["message"]


# ---- issue 22: a malformed tool call in the history, a client that leaves mid-body -------------


@pytest.mark.parametrize(("calls", "where"), [
    ([{"function": "abc"}], "messages.1.tool_calls.0.function"),  # was a 500 (AttributeError)
    ([1, 2], "messages.1.tool_calls.0"),
    ([{"id": "c1", "function": {"arguments": "{}"}}], "messages.1.tool_calls.0.function.name"),
    ([{"type": "web_search", "function": {"name": "f"}}], "messages.1.tool_calls.0.type"),
    ("abc", "messages.1.tool_calls"),
])
def test_a_malformed_earlier_tool_call_is_a_400_naming_it(server, calls, where):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": calls},
                {"role": "tool", "tool_call_id": "c1", "content": "5"}]
    error = assert_openai_error(post(server, "/v1/chat/completions", {"model": "tiny", "max_tokens": 2,
                                                                      "messages": messages}), 400, f"'{where}'")
    assert error["param"] == "messages"


def test_an_earlier_tool_call_with_dict_or_string_arguments_is_read_back(server):
    replies = []
    for arguments in ('{"a": 2}', {"a": 2}):
        messages = [{"role": "user", "content": "hi"},
                    {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "index": 0,
                                                          "function": {"name": "add", "arguments": arguments}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "5"}]
        tokens = post(server, "/tokenize", {"model": "tiny", "messages": messages})
        assert tokens.status_code == 200, tokens.text
        replies.append(tokens.json()["tokens"])
    assert replies[0] == replies[1]  # both written back as the same <tool_call> block


def test_a_client_that_leaves_mid_body_is_one_log_line_without_a_traceback(server, caplog):
    caplog.set_level(logging.INFO)
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\": ")
        time.sleep(0.1)
    deadline = time.time() + 10
    while not caplog.records and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # anything else it would log comes with the first line
    assert [(r.levelname, r.exc_info) for r in caplog.records] == [("WARNING", None)], caplog.text
    assert "disconnected before sending its whole body" in caplog.records[0].getMessage()
    assert httpx.get(server.url + "/health").status_code == 200
