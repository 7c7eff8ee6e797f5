"""Shared by the apps tests: a tiny random chat model whose tokenizer knows the action format (the
`llmos` command run in this process, `llmos_cli`, is in tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch

from llmos.config import ModelConfig
from llmos.model import CausalLM

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="session")
def tiny_chat_model():
    from llmos.tokenizer.training import train_tokenizer

    texts = ['<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>', '{"answer": "three"}',
             "the cat sat"] * 5
    tokenizer = train_tokenizer(texts, kind="bpe", vocab_size=300, min_frequency=1)
    tokenizer.chat_template = CHATML
    config = ModelConfig.from_preset("nano", vocab_size=len(tokenizer), d_model=32, n_layers=2, n_heads=4,
                                     n_kv_heads=2, d_ff=48, max_seq_len=2048, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    return CausalLM(config).eval(), tokenizer


@pytest.fixture
def one_thread():
    """Test machines are shared: two threads that meet at every matmul lose far more than they gain when
    another process holds a core (the customer-emails workflow on SmolLM2: 12 s with one thread, 65 s with
    two, side by side on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
