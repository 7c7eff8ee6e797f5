"""Tiny LLMOS model configs shared by the checkpoint tests."""

from __future__ import annotations

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

