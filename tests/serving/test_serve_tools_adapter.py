"""A tool-use LoRA adapter on the server: chat requests with tools decode through it, every other
request through the base model, in the same batches, each exactly as it would alone."""

from __future__ import annotations

import threading

import pytest
import torch
from openai import OpenAI

from llmos.adapters import add_lora, lora_layers, set_adapter
from llmos.errors import LLMOSError
from llmos.serving.api import create_app

TOOL = {"type": "function", "function": {
    "name": "shout", "description": "Say a word loudly.",
    "parameters": {"type": "object", "properties": {"word": {"type": "string", "maxLength": 5}},
                   "required": ["word"], "additionalProperties": False}}}
ASK = [{"role": "user", "content": "the quick brown fox"}]


def with_adapter(model):
    add_lora(model, {f"transformer.blocks.{i}.attn.qkv": [(0, model.transformer.blocks[i].attn.qkv.out_features)]
                     for i in range(model.config.n_layers)}, r=4, name="tools")
    torch.manual_seed(1)
    for _, layer in lora_layers(model):
        for b in layer.adapters["tools"].B:
            torch.nn.init.normal_(b, std=0.5)  # a fresh adapter changes nothing: make it matter
    set_adapter(model, None)
    return model


@pytest.fixture(scope="module")
def served(tokenizer, kit):
    model = with_adapter(kit.build_model(tokenizer.get_vocab_size(), max_seq_len=1536))
    uv, thread, url = kit.start_server(create_app(model, tokenizer, model_id="tiny", tools_adapter="tools"))
    yield model, OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
    uv.should_exit = True
    thread.join(timeout=10)


def call(client, tools: bool) -> str:
    extra = {"tools": [TOOL], "tool_choice": "required"} if tools else {}
    out = client.chat.completions.create(model="tiny", messages=ASK, max_tokens=60, temperature=0, **extra)
    message = out.choices[0].message
    return message.tool_calls[0].function.arguments if tools else message.content


def test_requests_with_tools_use_the_adapter_and_the_others_the_base_model_side_by_side(served, tokenizer, kit):
    model, client = served
    alone = {tools: call(client, tools) for tools in (True, False)}
    results: dict[bool, list[str]] = {True: [], False: []}
    threads = [threading.Thread(target=lambda t=t: results[t].append(call(client, t))) for t in (True, False) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[True] == [alone[True]] * 3 and results[False] == [alone[False]] * 3
    base = create_app(kit.build_model(tokenizer.get_vocab_size(), max_seq_len=1536), tokenizer, model_id="tiny")
    uv, thread, url = kit.start_server(base)  # the same weights without the adapter
    try:
        plain = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
        assert call(plain, False) == alone[False]  # a request without tools: the base model's answer
        assert call(plain, True) != alone[True]  # with tools: the adapter's
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_an_adapter_the_model_does_not_hold_is_refused(tokenizer, kit):
    with pytest.raises(LLMOSError, match="holds no such adapter"):
        create_app(kit.build_model(tokenizer.get_vocab_size()), tokenizer, tools_adapter="tools")
