"""Tiny random models saved as checkpoint directories, shared by the evaluation tests.

Handed out as fixtures (pytest runs with --import-mode=importlib, so test
modules cannot import from this folder).
"""

from __future__ import annotations

import pytest
import torch

from llmos.config import ModelConfig
from llmos.model import CausalLM, SequenceClassifier
from llmos.tokenizer import train_tokenizer

WORDS = "the cat sat on the mat . paris is nice and the dog ran far away from home today".split()
LABELS = ["negative", "neutral", "positive"]


def sentence(i: int, n: int = 6) -> str:
    return " ".join(WORDS[(i * 5 + k * 3) % len(WORDS)] for k in range(n))


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer([sentence(i, 12) for i in range(40)], kind="bpe", vocab_size=300)


@pytest.fixture(scope="session")
def causal_checkpoint(tmp_path_factory, tokenizer):
    """(path, model, tokenizer): a micro causal LM with a 64-token context."""
    path = tmp_path_factory.mktemp("causal")
    torch.manual_seed(0)
    model = CausalLM(ModelConfig.from_preset("micro", vocab_size=300, max_seq_len=64,
                                             eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>")))
    model.save_pretrained(path, tokenizer=tokenizer)
    return path, model.eval(), tokenizer


@pytest.fixture(scope="session")
def classifier_checkpoint(tmp_path_factory, tokenizer):
    """(path, model, tokenizer): a micro 3-way classifier with named labels and a random (but saved) head."""
    path = tmp_path_factory.mktemp("classifier")
    torch.manual_seed(1)
    config = ModelConfig.from_preset("micro", vocab_size=300, max_seq_len=64, num_labels=3, label_names=LABELS,
                                     pad_token_id=tokenizer.pad_token_id)
    model = SequenceClassifier(config)
    with torch.no_grad():  # a head big enough that random sentences land in different classes
        model.classifier.weight.normal_(0, 2.0)
    model.save_pretrained(path, tokenizer=tokenizer)
    return path, model.eval(), tokenizer
