"""Fixtures for checkpoint tests: tiny LLMOS configs (`tiny.llama()`, `tiny.gpt2()`, `tiny.bert()`)
and input ids. Helpers are fixtures because pytest runs with --import-mode=importlib."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from llmos.config import ModelConfig


def tiny_llama(**over) -> ModelConfig:
    base = dict(vocab_size=80, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=64)
    return ModelConfig.from_preset("nano", **{**base, **over})


def tiny_gpt2(**over) -> ModelConfig:
    base = dict(vocab_size=80, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=64)
    return ModelConfig.from_preset("micro", **{**base, **over})


def tiny_bert(**over) -> ModelConfig:
    base = dict(vocab_size=80, d_model=32, n_layers=2, n_heads=4, d_ff=48, max_seq_len=64)
    return ModelConfig.from_preset("bert-base", **{**base, **over})



@pytest.fixture
def tiny() -> SimpleNamespace:
    return SimpleNamespace(llama=tiny_llama, gpt2=tiny_gpt2, bert=tiny_bert)


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.randint(0, 80, (2, 9), generator=torch.Generator().manual_seed(1))
