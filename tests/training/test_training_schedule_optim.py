"""The learning-rate schedule, AdamW parameter groups and the MFU arithmetic."""

from __future__ import annotations

import math

import pytest
import torch

from llmos.config import ModelConfig
from llmos.model import CausalLM
from llmos.training.freeze import train_top
from llmos.training.mfu import Backward, backward_of, matmul_peak, mfu, training_flops_per_token
from llmos.training.optim import build_optimizer, parameter_groups
from llmos.training.schedule import learning_rate


def test_warmup_rises_linearly_then_cosine_falls_to_min_lr():
    lr = lambda s: learning_rate(s, lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)  # noqa: E731
    assert lr(0) == pytest.approx(0.1) and lr(4) == pytest.approx(0.5) and lr(9) == pytest.approx(1.0)
    assert lr(10) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.1 + 0.5 * 0.9)  # half way down the cosine
    assert lr(110) == pytest.approx(0.1) and lr(500) == pytest.approx(0.1)
    values = [lr(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_weight_decay_applies_to_matrices_only_and_tied_weights_once():
    model = CausalLM(ModelConfig.from_preset("micro", tie_embeddings=True))
    decay, no_decay = parameter_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    counted = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert counted == model.num_parameters()


def test_adamw_does_not_shrink_biases_with_zero_gradient():
    model = CausalLM(ModelConfig.from_preset("micro"))
    optimizer = build_optimizer(model, lr=0.1, weight_decay=0.5)
    bias = model.transformer.blocks[0].attn.qkv.bias
    matrix = model.transformer.blocks[0].attn.qkv.weight
    with torch.no_grad():
        bias.fill_(1.0)
    before_matrix = matrix.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    assert torch.equal(bias, torch.ones_like(bias))  # no decay
    assert torch.allclose(matrix, before_matrix * (1 - 0.1 * 0.5))  # decoupled decay


def test_training_flops_follow_6n_plus_attention():
    config = ModelConfig.from_preset("micro")
    n = CausalLM(config).num_parameters()
    per_token = training_flops_per_token(config, n, context=100)
    matmul_params = n - config.max_seq_len * config.d_model  # learned positions are a lookup
    assert per_token == 6 * matmul_params + 12 * config.n_layers * config.d_model * 100
    assert mfu(per_token, tokens_per_second=1000.0, peak_flops=per_token * 2000.0) == pytest.approx(0.5)


def test_frozen_parameters_leave_their_backward_out_of_the_flops():
    config = ModelConfig.from_preset("micro")
    model = CausalLM(config)
    n, d = model.num_parameters(), config.n_heads * config.head_dim
    assert backward_of(model) == Backward()  # everything trains: 6N + attention, as above
    train_top(model, 1)  # the top block and the final norm train; the tied head (the token table) is frozen
    lower = sum(p.numel() for block in model.transformer.blocks[:-1] for p in block.parameters())
    table = model.transformer.embed.tokens.weight.numel()  # the head's input gradients, not its own
    backward = backward_of(model)
    assert backward == Backward(below_parameters=lower, below_blocks=config.n_layers - 1, frozen_parameters=table)
    assert training_flops_per_token(config, n, 100, backward=backward) == \
        training_flops_per_token(config, n, 100) - 4 * lower - 2 * table - 8 * (config.n_layers - 1) * d * 100


def test_matmul_peak_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOS_CACHE_DIR", str(tmp_path))
    import llmos.training.mfu as mfu_module

    calls = []
    real = mfu_module.measure_matmul_peak
    monkeypatch.setattr(mfu_module, "measure_matmul_peak", lambda device, dtype: calls.append(dtype) or real(
        device, sizes=(128,), seconds_per_size=0.05, dtype=dtype))
    first = matmul_peak("cpu")
    second = matmul_peak("cpu")
    assert calls == [torch.float32] and first == second and first > 1e6 and math.isfinite(first)
    assert (tmp_path / "matmul_peak.json").is_file()
    # a run under bf16 autocast is measured against bf16 matmuls, cached on its own
    bf16 = matmul_peak("cpu", torch.bfloat16)
    assert matmul_peak("cpu", torch.bfloat16) == bf16 and calls == [torch.float32, torch.bfloat16] and bf16 > 1e6
