"""Logprobs of Chinese text through the server, as OpenAI writes them.

The model (tests/chinese_model.py) answers in Chinese with a byte-level BPE whose
tokens often hold only part of a character. OpenAI names such a token by its
bytes ("bytes:\\xe4\\xbd"), every other token by its text (never by byte-level
symbols like "Ġ" or "æ"); `text_offset` is the character offset of each token in
the returned text; chat logprobs carry each token's UTF-8 `bytes`.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from chinese_model import QUESTION, REPLY, chinese_chat_model, split_characters

from llmos.serving.api import create_app

END = "<|im_end|>"
BYTE_SYMBOLS = re.compile("[\u0080-\u0143]")  # Latin-1 and "Ā".."Ń": how byte-level BPE spells bytes


@pytest.fixture(scope="module")
def served(kit):
    model, tokenizer = chinese_chat_model()
    server, thread, url = kit.start_server(create_app(model, tokenizer, model_id="zh-tiny"))
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True,
                                           tokenize=False)
    yield url, tokenizer, prompt
    server.should_exit = True
    thread.join(timeout=10)


def token_bytes(token: str) -> bytes:
    """The bytes a completion-logprobs token stands for: "bytes:" + escapes, or its text."""
    if token.startswith("bytes:"):
        return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]),
                      token[len("bytes:"):].encode("utf-8"))
    return token.encode("utf-8")


def without_end(tokens: list) -> list:
    return tokens[:-1] if tokens and tokens[-1] in (END, {"token": END}) else tokens


def completion(url: str, **body) -> dict:
    reply = httpx.post(url + "/v1/completions", json={"model": "zh-tiny", "max_tokens": 80, "temperature": 0,
                                                      **body}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()["choices"][0]


def check_completion_logprobs(text: str, lp: dict, start: int = 0) -> None:
    tokens, offsets = lp["tokens"], lp["text_offset"]
    assert len(tokens) == len(offsets) == len(lp["token_logprobs"]) == len(lp["top_logprobs"])
    partial = [t for t in tokens if t.startswith("bytes:")]
    assert len(partial) >= 10  # the reply really has characters split across tokens
    for token in partial:  # "bytes:" + the bytes, whole characters as text, the rest escaped: "bytes:模\\xe5"
        assert re.fullmatch(r"bytes:([^\\]|\\x[0-9a-f]{2})+", token) and "\\x" in token, token
        with pytest.raises(UnicodeDecodeError):
            token_bytes(token).decode("utf-8")
    whole = [t for t in without_end(tokens) if not t.startswith("bytes:")]
    assert all(t in text for t in whole), whole  # real text, not byte-level symbols ("Ġ", "æ", "ľ")
    assert b"".join(token_bytes(t) for t in without_end(tokens)) == text[start:].encode("utf-8")
    # text_offset: where each token begins in the returned text, in characters
    assert offsets[0] == start and offsets == sorted(offsets)
    for token, offset in zip(tokens, offsets, strict=True):
        if not token.startswith("bytes:") and token != END:
            assert text[offset:].startswith(token), (token, offset)
    for top, token in zip(lp["top_logprobs"], tokens, strict=True):
        assert token in top  # greedy: the chosen token is the likeliest, keyed by the same text
        assert not any(BYTE_SYMBOLS.search(key) for key in top), top


def test_completion_logprobs_of_chinese_text_are_text_and_character_offsets(served):
    url, tokenizer, prompt = served
    assert split_characters(tokenizer) >= 10
    choice = completion(url, prompt=prompt, logprobs=2)
    assert choice["text"] == REPLY
    check_completion_logprobs(choice["text"], choice["logprobs"])


@pytest.mark.parametrize("echo", [False, True])
def test_streamed_completion_logprobs_continue_the_offsets(served, echo):
    url, _, prompt = served
    whole = completion(url, prompt=prompt, logprobs=2, echo=echo)["logprobs"]
    merged: dict[str, list] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    body = {"model": "zh-tiny", "prompt": prompt, "max_tokens": 80, "temperature": 0, "logprobs": 2,
            "stream": True, "echo": echo}
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                lp = json.loads(line[5:])["choices"][0]["logprobs"]
                for key in merged:
                    merged[key] += lp[key] if lp else []
    answer = len(merged["tokens"])  # a stream echoes the prompt's text without its logprobs
    assert merged["tokens"] == whole["tokens"][-answer:]
    assert merged["text_offset"] == whole["text_offset"][-answer:]


def test_echoed_completion_logprobs_count_offsets_in_the_echoed_text(served):
    url, _, prompt = served
    choice = completion(url, prompt=prompt, logprobs=1, echo=True)
    assert choice["text"].endswith(REPLY)  # the prompt is echoed as decoded (special tokens left out)
    lp = choice["logprobs"]
    assert lp["token_logprobs"][0] is None
    offsets = lp["text_offset"]
    assert offsets[0] == 0 and offsets == sorted(offsets)
    assert offsets[-1] <= len(choice["text"])
    for token, offset in zip(lp["tokens"], offsets, strict=True):
        if not token.startswith(("bytes:", "<|")):
            assert choice["text"][offset:].startswith(token), (token, offset)
    n = len(lp["tokens"]) - len(completion(url, prompt=prompt, logprobs=1)["logprobs"]["tokens"])
    assert offsets[n] == len(choice["text"]) - len(REPLY)  # the answer's first token starts after the prompt


def test_chat_logprobs_carry_text_tokens_and_their_utf8_bytes(served):
    url, _, _ = served
    body = {"model": "zh-tiny", "messages": [{"role": "user", "content": QUESTION}], "temperature": 0,
            "max_tokens": 80, "logprobs": True, "top_logprobs": 2}
    reply = httpx.post(url + "/v1/chat/completions", json=body, timeout=60).json()["choices"][0]
    assert reply["message"]["content"] == REPLY
    content = [e for e in reply["logprobs"]["content"] if e["token"] != END]
    assert b"".join(bytes(e["bytes"]) for e in content) == REPLY.encode("utf-8")
    assert sum(e["token"].startswith("bytes:") for e in content) >= 10
    for entry in content:
        raw = bytes(entry["bytes"])
        assert token_bytes(entry["token"]) == raw
        if not entry["token"].startswith("bytes:"):
            assert entry["token"] in REPLY and entry["token"] == raw.decode("utf-8")
        for top in entry["top_logprobs"]:
            assert token_bytes(top["token"]) == bytes(top["bytes"])
