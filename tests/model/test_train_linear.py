"""The oneDNN training linear: forward and gradients match a float64 F.linear, and training routes to it."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmos.config import ModelConfig
from llmos.model import CausalLM, fast_linear
from llmos.model.train_linear import onednn_linear

pytestmark = pytest.mark.skipif(not fast_linear.ONEDNN, reason="torch built without oneDNN linear")


def _reference(x, weight, bias, grad_out):
    """Output and gradients of F.linear in float64."""
    x64 = x.detach().double().requires_grad_()
    w64 = weight.detach().double().requires_grad_()
    b64 = None if bias is None else bias.detach().double().requires_grad_()
    y = F.linear(x64, w64, b64)
    y.backward(grad_out.double())
    return y, x64.grad, w64.grad, None if b64 is None else b64.grad


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("shape", [(7, 13), (2, 5, 16), (3, 4, 65)])
def test_forward_and_all_gradients_match_float64_linear(shape, with_bias):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g, requires_grad=True)
    weight = torch.randn(11, shape[-1], generator=g, requires_grad=True)
    bias = torch.randn(11, generator=g, requires_grad=True) if with_bias else None
    grad_out = torch.randn(*shape[:-1], 11, generator=g)
    y = onednn_linear(x, weight, bias)
    y.backward(grad_out)
    ref_y, ref_x, ref_w, ref_b = _reference(x, weight, bias, grad_out)
    assert y.shape == ref_y.shape and y.dtype == torch.float32
    torch.testing.assert_close(y.double(), ref_y, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(x.grad.double(), ref_x, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(weight.grad.double(), ref_w, rtol=1e-5, atol=1e-4)
    if with_bias:
        torch.testing.assert_close(bias.grad.double(), ref_b, rtol=1e-5, atol=1e-4)


def test_non_contiguous_input_and_frozen_input_give_correct_weight_gradient():
    g = torch.Generator().manual_seed(3)
    base = torch.randn(24, 6, 10, generator=g)
    x = base.transpose(0, 1)  # (6, 24, 10), not contiguous
    weight = torch.randn(9, 10, generator=g, requires_grad=True)
    grad_out = torch.randn(6, 24, 9, generator=g)
    onednn_linear(x, weight).backward(grad_out)
    _, _, ref_w, _ = _reference(x, weight, None, grad_out)
    torch.testing.assert_close(weight.grad.double(), ref_w, rtol=1e-5, atol=1e-4)


def test_tied_weight_accumulates_gradients_from_both_uses():
    g = torch.Generator().manual_seed(4)
    weight = torch.randn(8, 8, generator=g, requires_grad=True)
    x = torch.randn(5, 8, generator=g)
    onednn_linear(onednn_linear(x, weight), weight).sum().backward()
    w64 = weight.detach().double().requires_grad_()
    F.linear(F.linear(x.double(), w64), w64).sum().backward()
    torch.testing.assert_close(weight.grad.double(), w64.grad, rtol=1e-5, atol=1e-4)


def test_gradients_are_bitwise_identical_run_to_run():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(64, 48, generator=g)
    weight = torch.randn(40, 48, generator=g)
    grads = []
    for _ in range(2):
        w = weight.clone().requires_grad_()
        xi = x.clone().requires_grad_()
        onednn_linear(xi, w).square().sum().backward()
        grads.append((w.grad, xi.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


def test_training_linears_route_through_onednn_and_model_gradients_match_f_linear(monkeypatch):
    config = ModelConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, max_seq_len=16, mlp="swiglu")
    torch.manual_seed(0)
    model = CausalLM(config)
    ids = torch.randint(0, 61, (2, 16))
    calls = []
    real = fast_linear.onednn_linear
    monkeypatch.setattr(fast_linear, "onednn_linear", lambda *a: calls.append(1) or real(*a))
    model(ids, labels=ids).loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    assert len(calls) == linears
    model.zero_grad()
    monkeypatch.setattr(fast_linear, "ONEDNN", False)
    model(ids, labels=ids).loss.backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_inference_without_grad_still_skips_autograd():
    layer = nn.Linear(8, 4)
    with torch.no_grad():
        y = fast_linear.linear(torch.randn(3, 8), layer)
    assert y.grad_fn is None and not y.requires_grad


def test_mfu_peak_is_the_best_of_mkl_and_onednn_kernels(monkeypatch):
    import llmos.training.mfu as mfu_module

    assert set(mfu_module.matmul_kernels("cpu")) == {"torch.mm", "oneDNN"}
    a, b = torch.randn(33, 33), torch.randn(33, 33)
    for kernel in mfu_module.matmul_kernels("cpu").values():  # every kernel does the same product's FLOPs
        assert kernel(a, b).shape == (33, 33)
    peaks = mfu_module.measure_matmul_peaks("cpu", sizes=(64,), seconds_per_size=0.02)
    assert set(peaks) == {"torch.mm", "oneDNN"} and min(peaks.values()) > 0
    monkeypatch.setattr(mfu_module, "measure_matmul_peaks", lambda *a, **k: {"torch.mm": 2e11, "oneDNN": 4.5e11})
    assert mfu_module.measure_matmul_peak("cpu") == 4.5e11
