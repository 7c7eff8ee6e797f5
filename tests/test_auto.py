"""The Auto* API: one call from a checkpoint directory (with its tokenizer) to a ready model."""

from __future__ import annotations

import pytest
import torch

import llmos
from llmos import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    ModelConfig,
)
from llmos.model import CausalLM, MaskedLM, PreTrainingModel, SequenceClassifier

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the bird sang a song"] * 5


@pytest.fixture
def tokenizer():
    from llmos.tokenizer.training import train_tokenizer

    return train_tokenizer(TEXTS, kind="bpe", vocab_size=300, min_frequency=1)


def test_package_exports_the_auto_classes_and_model_config():
    for name in ("AutoTokenizer", "AutoModelForCausalLM", "AutoModelForMaskedLM",
                 "AutoModelForPreTraining", "AutoModelForSequenceClassification", "ModelConfig"):
        assert name in llmos.__all__ and hasattr(llmos, name)


def test_checkpoint_with_tokenizer_round_trips_model_and_tokenizer(tokenizer, tmp_path):
    config = ModelConfig.from_preset("nano", vocab_size=len(tokenizer), d_model=32, n_layers=1,
                                     n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=32)
    model = CausalLM(config).eval()
    model.save_pretrained(tmp_path / "ckpt", tokenizer=tokenizer)
    assert (tmp_path / "ckpt" / "tokenizer.json").is_file()

    loaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "ckpt")
    loaded_model = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt")
    assert len(loaded_tokenizer) == len(tokenizer)
    ids = torch.tensor([loaded_tokenizer.encode("the cat sang")])
    assert ids.tolist() == [tokenizer.encode("the cat sang")]
    with torch.no_grad():
        # same weights; kernels may round differently on differently aligned (mmap) memory
        torch.testing.assert_close(loaded_model(ids).logits, model(ids).logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("auto,head,preset", [
    (AutoModelForCausalLM, CausalLM, "micro"),
    (AutoModelForMaskedLM, MaskedLM, "bert-base"),
    (AutoModelForPreTraining, PreTrainingModel, "bert-base"),
    (AutoModelForSequenceClassification, SequenceClassifier, "bert-base"),
])
def test_each_auto_class_returns_its_head_in_eval_mode(auto, head, preset, tmp_path):
    config = ModelConfig.from_preset(preset, vocab_size=50, d_model=16, n_layers=1, n_heads=2, d_ff=32,
                                     max_seq_len=16)
    fresh = auto.from_config(config)
    assert type(fresh) is head
    fresh.save_pretrained(tmp_path / "ckpt")
    loaded = auto.from_pretrained(tmp_path / "ckpt", dtype="bfloat16")
    assert type(loaded) is head and not loaded.training and loaded.dtype == torch.bfloat16


def test_auto_classes_are_not_instantiated_directly():
    with pytest.raises(TypeError, match="from_pretrained"):
        AutoModelForCausalLM()
    with pytest.raises(TypeError, match="from_pretrained"):
        AutoTokenizer()
