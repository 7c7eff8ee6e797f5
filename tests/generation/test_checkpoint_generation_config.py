"""`from_pretrained(dir).generate()` decodes with the checkpoint's generation_config.json, as transformers does:
the same tokens and the same length with no keyword arguments at all."""

import json

import pytest
import torch

from llmos import AutoModelForCausalLM
from llmos.generation import GenerationConfig

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.parity


def _save_tiny_llama(path, generation_config=None):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, max_position_embeddings=128, initializer_range=0.2, tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    if generation_config is not None:
        model.generation_config = generation_config
    model.save_pretrained(path)


def _both_generate(path):
    ids = torch.tensor([[5, 6, 7, 8]])
    hf = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
    expected = hf.generate(ids, attention_mask=torch.ones_like(ids))
    ours = AutoModelForCausalLM.from_pretrained(path)
    return ours, ours.generate(ids), expected


def test_generate_without_kwargs_follows_the_checkpoints_generation_config(tmp_path):
    saved = transformers.GenerationConfig(max_new_tokens=9, repetition_penalty=1.5, no_repeat_ngram_size=2)
    _save_tiny_llama(tmp_path, saved)
    ours, got, expected = _both_generate(tmp_path)
    assert expected.shape == (1, 4 + 9)
    assert torch.equal(got, expected)
    assert isinstance(ours.generation_config, GenerationConfig)
    assert (ours.generation_config.max_new_tokens, ours.generation_config.repetition_penalty,
            ours.generation_config.no_repeat_ngram_size) == (9, 1.5, 2)


def test_explicit_generate_kwargs_win_over_the_file(tmp_path):
    _save_tiny_llama(tmp_path, transformers.GenerationConfig(max_new_tokens=9, no_repeat_ngram_size=2))
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.tensor([[5, 6, 7, 8]])
    assert model.generate(ids, max_new_tokens=3).shape == (1, 7)
    assert model.generation_config.max_new_tokens == 9  # a call's kwargs do not change the model's defaults


def test_do_sample_false_in_the_file_is_greedy_even_with_a_temperature(tmp_path):
    # transformers refuses to save this combination but loads it, as real checkpoints ship it: greedy.
    _save_tiny_llama(tmp_path)
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"do_sample": False, "temperature": 0.7, "top_p": 0.9, "top_k": 5, "max_new_tokens": 6}))
    _, got, expected = _both_generate(tmp_path)
    assert expected.shape == (1, 4 + 6)
    assert torch.equal(got, expected)

