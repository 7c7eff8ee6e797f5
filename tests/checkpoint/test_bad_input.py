"""Every unusable checkpoint is refused with one clear LLMOSError naming the file, key or value."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from llmos import AutoModelForCausalLM
from llmos.errors import LLMOSError
from llmos.model import CausalLM


@pytest.fixture
def checkpoint(tmp_path, tiny):
    path = tmp_path / "ckpt"
    CausalLM(tiny.llama()).save_pretrained(path)
    return path


def test_unknown_model_type_lists_the_supported_ones(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    config["model_type"] = "falcon"
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(LLMOSError, match=r"'falcon'.*'llmos'.*gpt2.*llama.*qwen2.*mistral.*bert"):
        AutoModelForCausalLM.from_pretrained(checkpoint)


def test_missing_weights_file_is_named(checkpoint):
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(LLMOSError, match=r"no model\.safetensors"):
        AutoModelForCausalLM.from_pretrained(checkpoint)


def test_pickle_weights_are_refused_as_only_safetensors_is_supported(checkpoint):
    (checkpoint / "model.safetensors").unlink()
    (checkpoint / "pytorch_model.bin").write_bytes(b"not to be unpickled")
    with pytest.raises(LLMOSError, match=r"pytorch_model\.bin.*only safetensors"):
        AutoModelForCausalLM.from_pretrained(checkpoint)


def test_truncated_weights_file_is_named(checkpoint):
    path = checkpoint / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LLMOSError, match=r"model\.safetensors.*(truncated|corrupt)"):
        AutoModelForCausalLM.from_pretrained(checkpoint)


def test_corrupt_weights_file_is_named(checkpoint):
    (checkpoint / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(LLMOSError, match=r"model\.safetensors.*(truncated|corrupt)"):
        AutoModelForCausalLM.from_pretrained(checkpoint)


def test_missing_shard_is_named(tmp_path, tiny):
    CausalLM(tiny.llama()).save_pretrained(tmp_path / "ckpt", max_shard_bytes=20_000)
    shard = sorted((tmp_path / "ckpt").glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(LLMOSError, match=shard.name):
        AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt")


def test_shape_mismatch_names_key_expected_and_found_shapes(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    config["d_ff"] = 40
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(LLMOSError, match=r"transformer\.blocks\.0\.mlp\.up\.weight: expected \(80, 32\), found \(96, 32\)"):
        AutoModelForCausalLM.from_pretrained(checkpoint)


def _rewrite_weights(checkpoint, change):
    path = checkpoint / "model.safetensors"
    state = load_file(str(path))
    change(state)
    save_file(state, str(path))


def test_missing_trunk_keys_are_listed(checkpoint):
    _rewrite_weights(checkpoint, lambda s: s.pop("transformer.blocks.1.attn.out.weight"))
    with pytest.raises(LLMOSError, match=r"missing keys \['transformer\.blocks\.1\.attn\.out\.weight'\]"):
        AutoModelForCausalLM.from_pretrained(checkpoint)


def test_unexpected_trunk_keys_are_listed(checkpoint):
    _rewrite_weights(checkpoint, lambda s: s.update({"transformer.blocks.7.extra": torch.zeros(2)}))
    with pytest.raises(LLMOSError, match=r"unexpected keys \['transformer\.blocks\.7\.extra'\]"):
        AutoModelForCausalLM.from_pretrained(checkpoint)


def test_tokenizer_larger_than_embedding_is_refused(tmp_path, tiny):
    from tokenizers import Tokenizer, models

    vocab = {f"t{i}": i for i in range(120)}
    Tokenizer(models.WordLevel(vocab, unk_token="t0")).save(str(tmp_path / "tokenizer.json"))
    CausalLM(tiny.gpt2()).save_pretrained(tmp_path / "ckpt")
    (tmp_path / "tokenizer.json").rename(tmp_path / "ckpt" / "tokenizer.json")
    with pytest.raises(LLMOSError, match=r"120 tokens.*vocab_size=80"):
        AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt")


@pytest.mark.parametrize("make_path", [
    lambda tmp: tmp / "does-not-exist",
    lambda tmp: tmp,  # a directory without config.json
])
def test_path_that_is_not_a_checkpoint_directory_is_refused(make_path, tmp_path):
    with pytest.raises(LLMOSError, match="not a checkpoint directory"):
        AutoModelForCausalLM.from_pretrained(make_path(tmp_path))


def test_unknown_dtype_lists_valid_ones(checkpoint):
    with pytest.raises(LLMOSError, match=r"dtype='int3'.*bfloat16"):
        AutoModelForCausalLM.from_pretrained(checkpoint, dtype="int3")


def test_save_into_an_existing_file_is_refused(tmp_path, tiny):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LLMOSError, match="not a directory"):
        CausalLM(tiny.gpt2()).save_pretrained(tmp_path / "file")
