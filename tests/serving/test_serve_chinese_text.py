"""Chinese text through the server: whole characters in every streamed delta, the same text as unstreamed.

The model (tests/chinese_model.py) has memorized one Chinese answer whose
characters straddle tokens, so each SSE delta is checked against a known text.
"""

from __future__ import annotations

import json

import httpx
import pytest
from chinese_model import QUESTION, REPLY, chinese_chat_model, split_characters

from llmos.serving.api import create_app


@pytest.fixture(scope="module")
def chinese_server(kit):
    model, tokenizer = chinese_chat_model()
    server, thread, url = kit.start_server(create_app(model, tokenizer, model_id="zh-tiny"))
    yield url, tokenizer
    server.should_exit = True
    thread.join(timeout=10)


def chat_body(**extra):
    return {"model": "zh-tiny", "messages": [{"role": "user", "content": QUESTION}], "temperature": 0,
            "max_tokens": 80, **extra}


def sse_events(url: str, path: str, body: dict) -> list[dict]:
    events = []
    with httpx.stream("POST", url + path, json=body, timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                events.append(json.loads(line[5:]))
    return events


def test_the_chinese_answer_comes_back_whole(chinese_server):
    url, tokenizer = chinese_server
    assert split_characters(tokenizer) >= 10  # the streams below really cut characters between tokens
    reply = httpx.post(url + "/v1/chat/completions", json=chat_body(), timeout=30).json()
    assert reply["choices"][0]["message"]["content"] == REPLY
    assert reply["choices"][0]["finish_reason"] == "stop"


def test_chat_stream_sends_whole_characters_and_the_same_text(chinese_server):
    url, _ = chinese_server
    deltas = [choice["delta"].get("content") or ""
              for event in sse_events(url, "/v1/chat/completions", chat_body(stream=True))
              for choice in event["choices"]]
    assert all("\ufffd" not in delta for delta in deltas)
    assert "".join(deltas) == REPLY
    assert len([d for d in deltas if d]) > 5  # streamed as it is decoded, not at the end


def test_completion_stream_of_the_rendered_prompt_sends_whole_characters(chinese_server):
    url, tokenizer = chinese_server
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True,
                                           tokenize=False)
    body = {"model": "zh-tiny", "prompt": prompt, "max_tokens": 80, "temperature": 0}
    texts = [choice["text"] for event in sse_events(url, "/v1/completions", {**body, "stream": True})
             for choice in event["choices"]]
    whole = httpx.post(url + "/v1/completions", json=body, timeout=30).json()["choices"][0]["text"]
    assert all("\ufffd" not in text for text in texts)
    assert "".join(texts) == whole == REPLY


@pytest.mark.parametrize("stop", ["模型", "中文。", "🙂"])
def test_a_chinese_stop_string_cuts_the_answer_streamed_or_not(chinese_server, stop):
    url, _ = chinese_server
    expected = REPLY[: REPLY.index(stop)]
    whole = httpx.post(url + "/v1/chat/completions", json=chat_body(stop=[stop]), timeout=30).json()
    deltas = [choice["delta"].get("content") or ""
              for event in sse_events(url, "/v1/chat/completions", chat_body(stop=[stop], stream=True))
              for choice in event["choices"]]
    assert whole["choices"][0]["message"]["content"] == expected
    assert "".join(deltas) == expected  # nothing of the stop string was sent before it completed
    assert all("\ufffd" not in delta for delta in deltas)


def test_the_openai_client_streams_the_chinese_answer(chinese_server):
    from openai import OpenAI

    url, _ = chinese_server
    client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)
    stream = client.chat.completions.create(model="zh-tiny", messages=[{"role": "user", "content": QUESTION}],
                                            stream=True, temperature=0, max_tokens=80)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == REPLY
