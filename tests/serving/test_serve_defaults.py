"""What a request that names no length and no sampling gets from the server: a reply capped at
max_tokens_default (finish_reason "length", streamed or not, JSON too), the model's own sampling
settings (its generation_config, else LLMOS's chat defaults when it names no sampling field), shown
on the model card; a tool call whose string argument would run on is closed by the grammar's
default string bound."""

from __future__ import annotations

import json
from contextlib import contextmanager

import openai
import pytest
import torch

from llmos.generation.constrained import DEFAULT_MAX_STRING_LENGTH
from llmos.generation_config import CHAT_SAMPLING, DEFAULT_REPLY_TOKENS, GenerationConfig

HELLO = [{"role": "user", "content": "hello"}]


@contextmanager
def served(kit, model, tokenizer, **options):
    from llmos.serving.api import create_app

    uv, thread, url = kit.start_server(create_app(model, tokenizer, model_id="tiny", **options))
    try:
        yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_a_reply_without_max_tokens_stops_at_the_servers_default_and_says_length(tokenizer, kit):
    model = kit.build_model(tokenizer.get_vocab_size(), max_seq_len=512)  # never ends by itself
    long_text = {"type": "object", "properties": {"text": {"type": "string", "minLength": 40}}, "required": ["text"]}
    with served(kit, model, tokenizer, max_tokens_default=7) as client:
        reply = client.chat.completions.create(model="tiny", messages=HELLO, temperature=0)
        assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 7
        chunks = list(client.chat.completions.create(model="tiny", messages=HELLO, temperature=0, stream=True,
                                                     stream_options={"include_usage": True}))
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
        assert chunks[-1].usage.completion_tokens == 7
        as_json = client.chat.completions.create(model="tiny", messages=HELLO, temperature=0, response_format={
            "type": "json_schema", "json_schema": {"name": "note", "schema": long_text}})
        assert as_json.choices[0].finish_reason == "length" and as_json.usage.completion_tokens == 7
        asked = client.chat.completions.create(model="tiny", messages=HELLO, temperature=0, max_completion_tokens=9)
        assert asked.usage.completion_tokens == 9  # the request's own limit wins


def test_sampling_left_out_follows_the_models_generation_config_then_llmos_defaults(tokenizer, kit):
    model = kit.build_model(tokenizer.get_vocab_size())
    with torch.no_grad():
        model.lm_head.weight.div_(50.0)  # flat distributions: sampling at temperature 1 is not greedy
    model.generation_config = GenerationConfig(temperature=1.5, top_k=None)  # the model's own: it samples
    with served(kit, model, tokenizer) as client:
        card = client.models.retrieve("tiny")
        assert card.defaults == {**CHAT_SAMPLING, "temperature": 1.5, "top_k": 0, "max_tokens": DEFAULT_REPLY_TOKENS}
        unset = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, seed=1)
        sampled = client.chat.completions.create(
            model="tiny", messages=HELLO, max_tokens=12, seed=1, temperature=1.5, top_p=CHAT_SAMPLING["top_p"],
            extra_body={"top_k": 0, "repetition_penalty": CHAT_SAMPLING["repetition_penalty"]})
        greedy = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, temperature=0)
        assert unset.choices[0].message.content == sampled.choices[0].message.content
        assert unset.choices[0].message.content != greedy.choices[0].message.content


def test_a_model_without_sampling_settings_gets_llmos_chat_defaults_greedy_with_a_penalty(tokenizer, kit):
    model = kit.build_model(tokenizer.get_vocab_size())
    with torch.no_grad():
        model.lm_head.weight.div_(50.0)  # flat distributions: sampling at temperature 1 is not greedy
    with served(kit, model, tokenizer, max_tokens_default=33) as client:
        assert client.models.retrieve("tiny").defaults == {**CHAT_SAMPLING, "max_tokens": 33}
        unset = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12)
        greedy = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, temperature=0,
                                                extra_body={"repetition_penalty": CHAT_SAMPLING["repetition_penalty"]})
        plain = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, temperature=0,
                                               extra_body={"repetition_penalty": 1.0})
        chosen = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, temperature=0)
    assert CHAT_SAMPLING["temperature"] == 0  # measured on SmolLM2: see benchmarks/chat_defaults.py
    assert unset.choices[0].message.content == greedy.choices[0].message.content
    assert unset.choices[0].message.content != plain.choices[0].message.content  # the penalty applies
    # a request that chose its decoding gets no LLMOS default beside it: temperature 0 is plain greedy
    assert chosen.choices[0].message.content == plain.choices[0].message.content


def test_a_plain_completion_keeps_openais_neutral_sampling_and_its_16_tokens(tokenizer, kit):
    model = kit.build_model(tokenizer.get_vocab_size())
    with torch.no_grad():
        model.lm_head.weight.div_(50.0)  # flat distributions: sampling at temperature 1 is not greedy
    with served(kit, model, tokenizer) as client:
        unset = client.completions.create(model="tiny", prompt="hello", seed=4)
        neutral = client.completions.create(model="tiny", prompt="hello", seed=4, temperature=1.0, top_p=1.0,
                                            extra_body={"top_k": 0, "repetition_penalty": 1.0})
    assert unset.choices[0].text == neutral.choices[0].text and unset.usage.completion_tokens == 16


def test_a_tool_call_whose_string_would_run_on_is_closed_by_the_grammar(tokenizer, kit):
    model = kit.build_model(tokenizer.get_vocab_size(), max_seq_len=1536)
    with torch.no_grad():  # a quote only when the grammar leaves nothing else: strings never end by choice
        for token_id in range(tokenizer.get_vocab_size()):
            if '"' in tokenizer.decode([token_id]):
                model.lm_head.bias[token_id] = -1e4
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    with served(kit, model, tokenizer) as client:
        reply = client.chat.completions.create(model="tiny", messages=HELLO, tools=[weather], tool_choice="required",
                                               temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    arguments = json.loads(choice.message.tool_calls[0].function.arguments)
    assert len(arguments["city"]) == DEFAULT_MAX_STRING_LENGTH


@pytest.mark.parametrize("bad", [0, -3])
def test_a_max_tokens_default_below_one_is_refused(tokenizer, kit, bad):
    from llmos.errors import LLMOSError
    from llmos.serving.api import create_app

    with pytest.raises(LLMOSError, match=f"max_tokens_default={bad} must be at least 1"):
        create_app(kit.build_model(tokenizer.get_vocab_size()), tokenizer, max_tokens_default=bad)
