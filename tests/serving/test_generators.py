"""The one generation service (`Generator`): a model in this process (LocalGenerator), the server's
continuous-batching engine (EngineGenerator) and a server over HTTP (RemoteGenerator) give the same greedy
replies to the same requests: chats and token ids, penalties, JSON-schema constraints, stop strings; the
same stop ids end them, and streams hand out the same text."""

from __future__ import annotations

import json

import pytest
import torch
from live_server import start_server

from llmos.apps.pipelines import pipeline
from llmos.config import ModelConfig
from llmos.generation.local import LocalGenerator
from llmos.generation.service import GenerationParams
from llmos.model import CausalLM
from llmos.serving.api import create_app
from llmos.serving.generator import EngineGenerator
from llmos.serving.remote import RemoteError, RemoteGenerator
from llmos.serving.text import ServedTokenizer

pytest.importorskip("llguidance")

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6},
                                           "n": {"type": "integer", "minimum": 0, "maximum": 9}},
          "required": ["name", "n"], "additionalProperties": False}


@pytest.fixture(scope="module")
def chat_model():
    """A tiny random Llama-shaped model and a BPE tokenizer with ChatML (<|endoftext|> is its EOS,
    <|im_end|> the chat format's end of turn)."""
    from llmos.tokenizer.training import train_tokenizer

    tokenizer = train_tokenizer(['{"name": "Ada", "n": 3}', "the cat sat on the mat", "hello there"] * 5,
                                kind="bpe", vocab_size=300, min_frequency=1)
    config = ModelConfig.from_preset("nano", vocab_size=len(tokenizer), d_model=32, n_layers=2, n_heads=4,
                                     n_kv_heads=2, d_ff=48, max_seq_len=512, eos_token_id=tokenizer.eos_token_id,
                                     lm_head_bias=True)
    torch.manual_seed(0)
    return CausalLM(config).eval(), tokenizer


@pytest.fixture(scope="module")
def engine(chat_model):
    with EngineGenerator.start(*chat_model, max_batch=4) as generator:
        yield generator


def chat(text: str) -> list[dict]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


REQUESTS = {  # name -> (prompts, params)
    "greedy chats and ids": ([chat("the cat"), chat("hello there, the cat sat on the mat"), [5, 9, 12, 40]],
                             GenerationParams(max_new_tokens=24, logprobs=True)),
    "repetition penalty": ([chat("the mat")], GenerationParams(max_new_tokens=24, repetition_penalty=1.3)),
    "json schema": ([chat("Ada is three"), chat("the cat")],
                    GenerationParams(max_new_tokens=40, constraint={"json_schema": SCHEMA})),
    "choices": ([chat("yes or no?")], GenerationParams(max_new_tokens=8, constraint={"choices": ["yes", "no"]})),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_a_greedy_request_through_the_engine_equals_the_local_backends(chat_model, engine, name):
    prompts, params = REQUESTS[name]
    local = LocalGenerator(*chat_model).generate(prompts, params)
    served = engine.generate(prompts, params)
    assert [(c.text, c.token_ids, c.finish_reason) for c in served] == \
           [(c.text, c.token_ids, c.finish_reason) for c in local]
    assert all(c.text for c in local)  # the comparison is of real replies
    if params.logprobs:
        assert [c.log_prob for c in served] == pytest.approx([c.log_prob for c in local], abs=1e-4)
    if params.constraint and "json_schema" in params.constraint:
        assert all(set(json.loads(c.text)) == {"name", "n"} for c in served)


def test_a_stop_string_cuts_the_reply_before_it_in_every_backend_and_streams_the_same_text(chat_model, engine):
    prompt, free = chat("the cat"), GenerationParams(max_new_tokens=24)
    whole = LocalGenerator(*chat_model).generate([prompt], free)[0].text
    stop = whole[len(whole) // 2:len(whole) // 2 + 2]
    assert stop.strip() and len(whole) > 6
    params = free.replace(stop=(stop,))
    for generator in (LocalGenerator(*chat_model), engine):
        [reply] = generator.generate([prompt], params)
        assert reply.text == whole[:whole.index(stop)] and reply.finish_reason == "stop"
        events = list(generator.stream([prompt], params))
        assert "".join(e.text for e in events) == reply.text and events[-1].completion.text == reply.text


def test_the_remote_backend_gives_the_served_engines_reply(chat_model):
    model, tokenizer = chat_model
    server, thread, url = start_server(create_app(model, tokenizer, model_id="tiny", max_batch=4))
    try:
        remote = RemoteGenerator(url + "/v1")
        assert remote.model == "tiny" and remote.max_len == 512
        prompts, params = REQUESTS["json schema"]
        local = LocalGenerator(model, tokenizer)
        assert [c.text for c in remote.generate(prompts, params)] == [c.text for c in local.generate(prompts, params)]
        ids = REQUESTS["greedy chats and ids"][0][2]
        streamed = list(remote.stream([ids], GenerationParams(max_new_tokens=10)))
        assert "".join(e.text for e in streamed) == local.generate([ids], GenerationParams(max_new_tokens=10))[0].text
        with pytest.raises(RemoteError, match="regex has no OpenAI field"):
            remote.generate([chat("hi")], GenerationParams(constraint={"regex": "a+"}))
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_next_token_scores_through_the_engine_equal_the_models_own(chat_model, engine):
    prompts, ids = [chat("the cat"), chat("the mat is"), [5, 9, 12]], [4, 17, 40, 41]
    local = LocalGenerator(*chat_model).next_token_log_probs(prompts, ids)
    torch.testing.assert_close(torch.tensor(engine.next_token_log_probs(prompts, ids)), torch.tensor(local),
                               atol=1e-4, rtol=0)


def test_one_set_of_stop_ids_ends_a_reply_the_models_eos_first(chat_model, engine):
    model, tokenizer = chat_model
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert LocalGenerator(model, tokenizer).stop_ids == engine.stop_ids == [tokenizer.eos_token_id, im_end]
    assert ServedTokenizer(tokenizer, None, model.config.eos_token_ids).stop_ids == engine.stop_ids


def test_a_chat_pipeline_reply_ends_at_the_end_of_turn_token_not_only_at_eos(chat_model):
    model, tokenizer = chat_model
    ends_turn = CausalLM(model.config).eval()
    ends_turn.load_state_dict(model.state_dict())
    with torch.no_grad():  # the chat format's end of turn, which is not the tokenizer's EOS, comes first
        ends_turn.lm_head.bias[tokenizer.convert_tokens_to_ids("<|im_end|>")] = 1e4
    pipe = pipeline("chat", model=ends_turn, tokenizer=tokenizer)
    [reply] = pipe.generate([chat("hi")], [None], {"max_new_tokens": 5, "do_sample": False})
    assert (reply.text, reply.token_ids, reply.cut) == ("", [], False)
