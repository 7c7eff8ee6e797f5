"""The chunked LM head + cross-entropy equals F.cross_entropy over full logits, value and gradients."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmos.config import ModelConfig
from llmos.kernels import FusedLossHead, use_kernels
from llmos.kernels import head_loss as fused_head_loss
from llmos.kernels.head_loss import head_cross_entropy
from llmos.model import CausalLM


def _reference(h, layer, targets, scale):
    """Loss and gradients (h, weight, bias) of the plain computation in float64."""
    h64 = h.detach().double().requires_grad_()
    w64 = layer.weight.detach().double().requires_grad_()
    b64 = None if layer.bias is None else layer.bias.detach().double().requires_grad_()
    loss = F.cross_entropy(F.linear(h64, w64, b64).reshape(-1, w64.shape[0]), targets.reshape(-1),
                           ignore_index=-100)
    (loss * scale).backward()
    return loss, h64.grad, w64.grad, None if b64 is None else b64.grad


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("rows", [5, 77, 300])  # one chunk, several chunks with a partial last one
def test_loss_and_gradients_match_the_full_logits_computation(monkeypatch, rows, with_bias):
    monkeypatch.setattr(fused_head_loss, "CHUNK_ELEMENTS", 64 * 97)  # 64-row chunks at vocab 97
    g = torch.Generator().manual_seed(rows)
    layer = nn.Linear(24, 97, bias=with_bias)
    h = torch.randn(rows, 24, generator=g, requires_grad=True)
    targets = torch.randint(0, 97, (rows,), generator=g)
    targets[::4] = -100
    loss = head_cross_entropy(h, layer, targets)
    (loss * 3.0).backward()  # a scale other than 1 reaches the saved gradients
    ref_loss, ref_h, ref_w, ref_b = _reference(h, layer, targets, 3.0)
    torch.testing.assert_close(loss.double(), ref_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h.grad.double(), ref_h, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(layer.weight.grad.double(), ref_w, rtol=1e-4, atol=1e-7)
    if with_bias:
        torch.testing.assert_close(layer.bias.grad.double(), ref_b, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kernels", [True, False])
def test_causal_lm_targets_give_the_loss_and_gradients_of_its_logits(kernels):
    """Through the model, with the fused head swapped in or the plain one: tied embeddings get
    the head's gradient plus the lookup's."""
    config = ModelConfig.from_preset("micro", vocab_size=50, max_seq_len=16)
    torch.manual_seed(0)
    model = use_kernels(CausalLM(config), enabled=kernels)
    assert isinstance(model.lm_head, FusedLossHead) == kernels
    assert model.lm_head.weight is model.transformer.embed.tokens.weight
    x = torch.randint(0, 50, (2, 12))
    y = torch.roll(x, -1, dims=1)
    y[:, -1] = -100
    y[0, :5] = -100  # a prompt: the head runs only on the learned positions, same loss and gradients
    fused = model(x, targets=y)
    assert fused.logits is None
    fused.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    logits = model(x).logits
    plain = F.cross_entropy(logits.reshape(-1, 50), y.reshape(-1), ignore_index=-100)
    plain.backward()
    torch.testing.assert_close(fused.loss, plain, rtol=1e-5, atol=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_all_targets_ignored_gives_zero_loss_and_zero_gradients():
    layer = nn.Linear(8, 11)
    h = torch.randn(4, 8, requires_grad=True)
    loss = head_cross_entropy(h, layer, torch.full((4,), -100))
    loss.backward()
    assert loss.item() == 0.0 and not h.grad.any() and not layer.weight.grad.any()


def test_a_frozen_head_gets_no_weight_gradient_and_the_same_input_gradient():
    g = torch.Generator().manual_seed(7)
    layer = nn.Linear(24, 97, bias=False)
    layer.weight.requires_grad_(False)
    h = torch.randn(40, 24, generator=g, requires_grad=True)
    targets = torch.randint(0, 97, (40,), generator=g)
    head_cross_entropy(h, layer, targets).backward()
    _, ref_h, _, _ = _reference(h, layer, targets, 1.0)
    assert layer.weight.grad is None
    torch.testing.assert_close(h.grad.double(), ref_h, rtol=1e-4, atol=1e-7)
