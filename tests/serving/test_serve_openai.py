"""The official openai client, unchanged, against a real uvicorn server on loopback."""

from __future__ import annotations

import math

import openai
import pytest
import torch


def reference_greedy(server, prompt_ids: list[int], n_tokens: int) -> list[int]:
    """What plain greedy decoding with the same model produces (no server, no batching)."""
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        for _ in range(n_tokens):
            next_id = server.model(ids).logits[0, -1].argmax()
            ids = torch.cat([ids, next_id.view(1, 1)], dim=1)
    return ids[0, len(prompt_ids):].tolist()


def test_models_lists_the_served_model(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]


def test_completion_greedy_matches_plain_decoding(client, server):
    prompt = "the quick brown fox"
    out = client.completions.create(model="tiny", prompt=prompt, max_tokens=8, temperature=0)
    expected = reference_greedy(server, server.tokenizer.encode(prompt).ids, 8)
    assert out.choices[0].text == server.tokenizer.decode(expected)
    assert out.choices[0].finish_reason == "length"
    assert out.usage.completion_tokens == 8
    assert out.usage.prompt_tokens == len(server.tokenizer.encode(prompt).ids)


def test_completion_list_of_prompts_and_n_give_one_choice_each(client):
    out = client.completions.create(model="tiny", prompt=["hello world", "to be"], n=3, max_tokens=4,
                                    temperature=1.0, seed=7)
    assert sorted(c.index for c in out.choices) == list(range(6))
    assert all(c.finish_reason == "length" for c in out.choices)
    assert out.usage.completion_tokens == 24


def test_sampling_with_a_seed_is_reproducible_and_choices_differ(client):
    kwargs = dict(model="tiny", prompt="hello", max_tokens=12, temperature=1.5, n=3, seed=123)
    first = client.completions.create(**kwargs)
    second = client.completions.create(**kwargs)
    assert [c.text for c in first.choices] == [c.text for c in second.choices]
    assert len({c.text for c in first.choices}) > 1


def test_stop_string_cuts_the_text_and_reports_stop(client, server):
    prompt = "to be or not"
    full = client.completions.create(model="tiny", prompt=prompt, max_tokens=12, temperature=0).choices[0].text
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    assert stop.strip(), "need a visible stop string"
    cut = client.completions.create(model="tiny", prompt=prompt, max_tokens=12, temperature=0, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == full[: full.index(stop)]


def test_echo_with_logprobs_and_zero_max_tokens_scores_the_prompt(client, server):
    prompt = "a journey of a thousand miles"
    ids = server.tokenizer.encode(prompt).ids
    out = client.completions.create(model="tiny", prompt=prompt, max_tokens=0, echo=True, logprobs=2)
    lp = out.choices[0].logprobs
    assert out.choices[0].text == prompt
    assert len(lp.token_logprobs) == len(ids) and lp.token_logprobs[0] is None
    with torch.no_grad():
        logits = server.model(torch.tensor([ids])).logits[0].log_softmax(-1)
    expected = [logits[i - 1, ids[i]].item() for i in range(1, len(ids))]
    assert lp.token_logprobs[1:] == pytest.approx(expected, abs=1e-4)
    assert all(len(top) == 2 for top in lp.top_logprobs[1:])


def test_completion_logprobs_are_log_probabilities_of_the_chosen_tokens(client):
    out = client.completions.create(model="tiny", prompt="hello", max_tokens=5, temperature=0, logprobs=3)
    lp = out.choices[0].logprobs
    assert len(lp.token_logprobs) == 5
    for chosen, top in zip(lp.token_logprobs, lp.top_logprobs, strict=True):
        assert chosen <= 0 and len(top) == 3
        assert chosen == pytest.approx(max(top.values()), abs=1e-5)  # greedy picks the most likely


def test_chat_completion_answers_as_assistant(client, server):
    out = client.chat.completions.create(
        model="tiny", messages=[{"role": "system", "content": "be brief"},
                                {"role": "user", "content": "hello"}], max_tokens=6, temperature=0)
    message = out.choices[0].message
    assert message.role == "assistant" and isinstance(message.content, str)
    prompt = "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    ids = server.tokenizer.encode(prompt).ids
    assert out.usage.prompt_tokens == len(ids)
    assert message.content == server.tokenizer.decode(reference_greedy(server, ids, 6))


def test_chat_streaming_sends_role_first_finish_last_and_usage(client):
    stream = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_completion_tokens=7,
        temperature=0, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[-1].choices[0].finish_reason == "length"
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7
    streamed = "".join(c.choices[0].delta.content or "" for c in with_choices)
    whole = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hello"}],
                                           max_completion_tokens=7, temperature=0)
    assert streamed == whole.choices[0].message.content


def test_chat_streaming_with_n_streams_every_choice(client):
    stream = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                            n=3, max_tokens=5, temperature=1.0, seed=1, stream=True)
    finished = {c.choices[0].index: c.choices[0].finish_reason for c in stream
                if c.choices and c.choices[0].finish_reason}
    assert finished == {0: "length", 1: "length", 2: "length"}


def test_chat_logprobs_list_top_alternatives(client):
    out = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                         max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)
    content = out.choices[0].logprobs.content
    assert len(content) == 4
    for entry in content:
        assert len(entry.top_logprobs) == 2
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob, abs=1e-5)
        assert math.exp(entry.logprob) <= 1.0


def test_completion_streaming_matches_non_streaming(client):
    stream = client.completions.create(model="tiny", prompt="hello world", max_tokens=9, temperature=0,
                                       stream=True)
    text = "".join(c.choices[0].text for c in stream if c.choices)
    whole = client.completions.create(model="tiny", prompt="hello world", max_tokens=9, temperature=0)
    assert text == whole.choices[0].text


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.completions.create(model="gpt-4", prompt="hi", max_tokens=1)
    assert "gpt-4" in info.value.message


def test_invalid_parameter_is_400_naming_it(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="tiny", prompt="hi", max_tokens=1, temperature=5)
    assert info.value.body["param"] == "temperature"


def test_prompt_over_the_context_window_is_400_naming_the_limit(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="tiny", prompt=list(range(10, 140)), max_tokens=1)
    assert "128" in info.value.message and info.value.body["code"] == "context_length_exceeded"


def test_max_tokens_beyond_the_context_is_400_naming_the_room_left(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="tiny", prompt="hi", max_tokens=10_000)
    assert info.value.body["param"] == "max_tokens" and "128" in info.value.message


def test_chat_without_max_tokens_is_capped_by_the_context(client, server):
    out = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                         temperature=0)
    assert out.choices[0].finish_reason == "length"
    assert out.usage.total_tokens == 128
