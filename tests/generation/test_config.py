"""GenerationConfig: validation with clear errors, JSON round trip, defaults from the model."""

import json
import warnings

import pytest
import torch

from llmos import AutoModelForCausalLM
from llmos.config import ModelConfig
from llmos.errors import LLMOSError
from llmos.generation import DEFAULT_MAX_NEW_TOKENS, GenerationConfig, generate
from llmos.model import CausalLM


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CausalLM(ModelConfig.from_preset("micro", eos_token_id=2)).eval()


@pytest.mark.parametrize("field, value", [
    ("temperature", -1.0), ("temperature", 0.0), ("top_p", 0.0), ("top_p", 1.5), ("num_beams", 0),
    ("max_new_tokens", 0), ("max_new_tokens", -3), ("top_k", -1), ("min_p", 2.0),
    ("repetition_penalty", 0.0), ("early_stopping", "sometimes"), ("eos_token_id", -1),
])
def test_bad_values_raise_one_error_naming_the_parameter(field, value):
    with pytest.raises(LLMOSError, match=field):
        GenerationConfig(**{field: value})


def test_more_return_sequences_than_beams_needs_sampling():
    with pytest.raises(LLMOSError, match="num_return_sequences"):
        GenerationConfig(num_beams=2, num_return_sequences=3)
    GenerationConfig(do_sample=True, num_return_sequences=3)  # sampling: fine


def test_generate_rejects_bad_inputs_with_llmos_errors(model):
    ids = torch.tensor([[5, 6, 7]])
    cases = [(dict(temperature=-0.5, do_sample=True), "temperature"), (dict(top_p=0.0), "top_p"),
             (dict(num_beams=0), "num_beams"), (dict(max_new_tokens=0), "max_new_tokens"),
             (dict(num_return_sequences=2), "num_return_sequences"), (dict(bogus=1), "bogus")]
    for kwargs, name in cases:
        with pytest.raises(LLMOSError, match=name):
            generate(model, ids, **kwargs)
    with pytest.raises(LLMOSError, match="empty"):
        generate(model, [], max_new_tokens=2)
    with pytest.raises(LLMOSError, match="input_ids"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), max_new_tokens=2)
    with pytest.raises(LLMOSError, match=r"token id 512.*\[0, 511\]"):
        generate(model, torch.tensor([[1, 512]]), max_new_tokens=2)
    with pytest.raises(LLMOSError, match="token id -1"):
        generate(model, torch.tensor([[1, -1]]), max_new_tokens=2)
    with pytest.raises(LLMOSError, match="stop_strings"):
        generate(model, ids, stop_strings=["x"], max_new_tokens=2)  # no tokenizer


def test_round_trips_through_generation_config_json(tmp_path):
    cfg = GenerationConfig(max_new_tokens=40, do_sample=True, top_p=0.8, eos_token_id=[2, 7])
    cfg.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "generation_config.json").read_text())
    data["transformers_version"] = "5.0"
    data["typical_p"] = 1.0  # an HF key we do not use is kept, not fatal
    (tmp_path / "generation_config.json").write_text(json.dumps(data))
    loaded = GenerationConfig.from_pretrained(tmp_path)
    assert loaded.max_new_tokens == 40 and loaded.eos_token_ids == [2, 7] and loaded.top_p == 0.8
    assert loaded.to_dict()["typical_p"] == 1.0 and "transformers_version" not in loaded.to_dict()


def test_reads_a_transformers_generation_config(tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.GenerationConfig(max_new_tokens=9, eos_token_id=4, pad_token_id=0, do_sample=True,
                                  top_k=20).save_pretrained(tmp_path)
    cfg = GenerationConfig.from_pretrained(tmp_path)
    assert (cfg.max_new_tokens, cfg.eos_token_id, cfg.pad_token_id, cfg.top_k) == (9, 4, 0, 20)


def test_defaults_come_from_the_checkpoints_generation_config(model, tmp_path):
    # through a saved checkpoint and from_pretrained, not an attribute set by hand
    ids = torch.tensor([[5, 6, 7]])
    model.save_pretrained(tmp_path, generation_config=GenerationConfig(max_new_tokens=3))
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert generate(loaded, ids).shape == (1, 6)
    assert generate(loaded, ids, max_new_tokens=5).shape == (1, 8)


def test_default_length_is_generous_and_warns_when_it_cuts(model):
    ids = torch.tensor([[5, 6, 7]])
    no_eos = CausalLM(ModelConfig.from_preset("micro", max_seq_len=512)).eval()
    with pytest.warns(UserWarning, match="default limit"):
        out = generate(no_eos, ids)
    assert out.shape[1] == 3 + DEFAULT_MAX_NEW_TOKENS


def test_warns_and_caps_when_prompt_plus_new_tokens_exceed_the_context(model):
    ids = torch.randint(3, 512, (1, 120))
    with pytest.warns(UserWarning, match="context window"):
        out = generate(model, ids, max_new_tokens=50, eos_token_id=None)
    assert out.shape[1] == model.config.max_seq_len


def test_warns_when_max_length_does_not_exceed_the_prompt(model):
    ids = torch.randint(3, 512, (1, 10))
    with pytest.warns(UserWarning, match="max_length=8"):
        out = generate(model, ids, max_length=8)
    assert out.shape[1] == 11
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert generate(model, ids, max_length=14, eos_token_id=None).shape[1] == 14


def test_null_in_a_generation_config_file_means_the_default(tmp_path):
    # transformers reads a null as "not set"; files written by other tools carry them
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"temperature": None, "top_p": None, "num_beams": None, "max_new_tokens": 4, "top_k": None}))
    cfg = GenerationConfig.from_pretrained(tmp_path)
    assert (cfg.temperature, cfg.top_p, cfg.num_beams, cfg.max_new_tokens, cfg.top_k) == (1.0, 1.0, 1, 4, None)


def test_a_saved_generation_config_holds_what_was_set_and_transformers_saves_it_again(tmp_path, model):
    transformers = pytest.importorskip("transformers")
    config = GenerationConfig(max_new_tokens=5, eos_token_id=2, extra={"typical_p": 1.0})
    config.save_pretrained(tmp_path / "alone")
    model.save_pretrained(tmp_path / "ckpt", generation_config=config)
    for path in (tmp_path / "alone", tmp_path / "ckpt"):
        assert json.loads((path / "generation_config.json").read_text()) == {
            "max_new_tokens": 5, "eos_token_id": 2, "typical_p": 1.0}
        transformers.GenerationConfig.from_pretrained(path).save_pretrained(tmp_path / "again")  # valid there
    assert GenerationConfig.from_pretrained(tmp_path / "ckpt") == config


@pytest.mark.parametrize("given,expected", [(None, []), (7, [7]), ([2, 7], [2, 7]), ((2, 7), [2, 7])])
def test_model_and_generation_configs_read_eos_token_id_the_same_way(given, expected):
    model_config = ModelConfig.from_preset("micro", eos_token_id=given)
    assert model_config.eos_token_ids == expected
    assert GenerationConfig(eos_token_id=given).eos_token_ids == expected
    assert GenerationConfig.from_model_config(model_config).eos_token_ids == expected


@pytest.mark.parametrize("bad", [True, -1, "2", [2, None]])
def test_an_eos_token_id_that_is_not_token_ids_is_refused_with_its_value(bad):
    with pytest.raises(LLMOSError, match="eos_token_id"):
        GenerationConfig(eos_token_id=bad)


def test_chat_sampling_takes_each_value_the_model_sets_and_llmos_defaults_for_the_rest():
    from llmos.generation_config import CHAT_SAMPLING, chat_generate_keywords, chat_sampling

    assert chat_sampling(None) == CHAT_SAMPLING == chat_sampling(GenerationConfig(eos_token_id=2))
    own = GenerationConfig(temperature=0.6, top_k=None, top_p=0.8)  # as Llama 3's generation_config.json
    assert chat_sampling(own) == {**CHAT_SAMPLING, "temperature": 0.6, "top_k": 0, "top_p": 0.8}
    assert chat_sampling({"repetition_penalty": 1.05}) == {**CHAT_SAMPLING, "repetition_penalty": 1.05}
    # a grammar-constrained reply (JSON, a tool call) gets no default penalty: it copies the prompt's values
    assert chat_sampling(None, constrained=True) == {**CHAT_SAMPLING, "repetition_penalty": 1.0}
    assert chat_sampling({"repetition_penalty": 1.05}, constrained=True)["repetition_penalty"] == 1.05
    keywords = chat_generate_keywords(own)
    assert keywords["do_sample"] is True and keywords["top_k"] is None
    GenerationConfig(**keywords)  # valid generate keywords
