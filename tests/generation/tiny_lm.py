"""A tiny random Llama-shaped model with a real byte-level BPE tokenizer trained on a few JSON-ish
lines, built in-process (no files, no downloads): the fixture of the constrained-decoding tests."""

from __future__ import annotations

import functools

import torch

from llmos.config import ModelConfig
from llmos.model import CausalLM

TEXTS = ['{"name": "Ana", "age": 31, "tags": ["a", "b"]}', "the cat sat on the mat", "yes no maybe 0123456789",
         '{"ok": true, "n": null, "x": -1.5}'] * 5


@functools.lru_cache(maxsize=1)
def tiny_tokenizer():
    from llmos.tokenizer.training import train_tokenizer

    return train_tokenizer(TEXTS, kind="bpe", vocab_size=320, min_frequency=1)


@functools.lru_cache(maxsize=4)
def tiny_lm(seed: int = 0, max_seq_len: int = 256) -> tuple[CausalLM, object]:
    """(model, tokenizer): a different random model per seed, the same tokenizer."""
    tokenizer = tiny_tokenizer()
    config = ModelConfig.from_preset("nano", vocab_size=len(tokenizer), d_model=32, n_layers=2, n_heads=4,
                                     n_kv_heads=2, d_ff=48, max_seq_len=max_seq_len,
                                     eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    return CausalLM(config).eval(), tokenizer
