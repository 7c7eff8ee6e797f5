"""Shared by the CLI tests: a tiny random chat checkpoint on disk, as `llmos serve|chat|generate` read it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmos.config import ModelConfig
from llmos.model import CausalLM


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> tuple[Path, CausalLM, object]:
    """(directory, model, tokenizer): a micro Llama-shaped model and a BPE tokenizer with ChatML."""
    from llmos.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["the cat sat on the mat. Paris is nice."] * 20, kind="bpe", vocab_size=300)
    torch.manual_seed(0)
    model = CausalLM(ModelConfig.from_preset("micro", vocab_size=len(tokenizer), position="rope",
                                             norm="rmsnorm", mlp="swiglu"))
    path = tmp_path_factory.mktemp("ckpt") / "tiny-chat"
    model.save_pretrained(path, tokenizer=tokenizer)
    return path, model.eval(), tokenizer
