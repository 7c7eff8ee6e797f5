"""Fixtures for serving tests: a tiny random CausalLM, a small trained BPE tokenizer and a real
uvicorn server on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
from live_server import free_port, start_server
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from llmos.config import ModelConfig
from llmos.model import CausalLM
from llmos.serving.api import create_app

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a journey of a thousand miles begins with a single step",
    "to be or not to be that is the question",
    "hello world, hello server, hello tokens and streams",
] * 20


def build_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer


def build_model(vocab_size: int, max_seq_len: int = 128, seed: int = 0) -> CausalLM:
    """Random weights; the special tokens are made unreachable so answers run to max_tokens."""
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=vocab_size, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                         max_seq_len=max_seq_len, position="rope", norm="rmsnorm", mlp="swiglu",
                         tie_embeddings=False, lm_head_bias=True, qkv_bias=False)
    model = CausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(50.0)  # sharp distributions: greedy never sits on a near-tie
        model.lm_head.bias[: len(SPECIALS)] = -1e4
    return model


@dataclass
class RunningServer:
    url: str
    app: object
    model: CausalLM
    tokenizer: Tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return build_tokenizer()


@pytest.fixture(scope="module")
def server(tokenizer) -> Iterator[RunningServer]:
    model = build_model(tokenizer.get_vocab_size())
    app = create_app(model, tokenizer, model_id="tiny", max_batch=8, max_queue=64,
                     max_body_bytes=64 * 1024)
    uv, thread, url = start_server(app)
    yield RunningServer(url, app, model, tokenizer)
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture()
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=30)


@pytest.fixture(scope="session")
def kit():
    """The helpers above for test modules (pytest runs with --import-mode=importlib, so tests
    cannot import conftest)."""
    from types import SimpleNamespace

    return SimpleNamespace(build_model=build_model, start_server=start_server, free_port=free_port,
                           corpus=CORPUS, specials=SPECIALS)
