"""The oneDNN training linear: forward and gradients match a float64 F.linear, and training routes to it."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmos.config import ModelConfig
from llmos.kernels import OneDNNLinear, onednn, use_kernels
from llmos.kernels.onednn import onednn_linear
from llmos.model import CausalLM

pytestmark = pytest.mark.skipif(not onednn.ONEDNN, reason="torch built without oneDNN linear")


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


def test_training_linears_route_through_onednn_and_model_gradients_match_plain_modules(monkeypatch):
    config = ModelConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, max_seq_len=16, mlp="swiglu")
    torch.manual_seed(0)
    plain = CausalLM(config)
    ids = torch.randint(0, 61, (2, 16))
    plain(ids, labels=ids).loss.backward()
    linears = sum(type(m) is nn.Linear for m in plain.modules())
    fast = use_kernels(plain)  # in place: the same parameters, now behind OneDNNLinear modules
    reference = {n: p.grad.clone() for n, p in fast.named_parameters()}
    assert sum(isinstance(m, OneDNNLinear) for m in fast.modules()) == linears
    assert not any(type(m) is nn.Linear for m in fast.modules())
    calls = []
    real = onednn.onednn_linear
    monkeypatch.setattr(onednn, "onednn_linear", lambda *a: calls.append(1) or real(*a))
    fast.zero_grad()
    fast(ids, labels=ids).loss.backward()
    assert len(calls) == linears
    for name, p in fast.named_parameters():
        torch.testing.assert_close(p.grad, reference[name], rtol=1e-4, atol=1e-5, msg=name)


def test_swapped_linears_keep_parameters_state_dict_and_ties():
    config = ModelConfig.from_preset("micro", vocab_size=50, max_seq_len=16)
    model = CausalLM(config)
    before = {n: p for n, p in model.named_parameters(remove_duplicate=False)}
    keys = list(model.state_dict())
    use_kernels(model)
    after = dict(model.named_parameters(remove_duplicate=False))
    assert list(model.state_dict()) == keys
    assert all(after[n] is p for n, p in before.items())
    assert model.lm_head.weight is model.transformer.embed.tokens.weight


def test_kernels_switched_off_leave_plain_linears(monkeypatch):
    config = ModelConfig.from_preset("micro", vocab_size=50, max_seq_len=16)
    monkeypatch.setenv("LLMOS_KERNELS", "0")
    model = use_kernels(CausalLM(config))
    assert not any(isinstance(m, OneDNNLinear) for m in model.modules())
    assert any(isinstance(m, OneDNNLinear) for m in use_kernels(model, enabled=True).modules())


@pytest.mark.parametrize("few_rows_onednn", [True, False])
@pytest.mark.parametrize("rows", [1, 3, 40])
def test_inference_output_equals_f_linear_without_autograd(rows, few_rows_onednn):
    layer = nn.Linear(24, 20)
    fast = OneDNNLinear.from_linear(layer, few_rows_onednn=few_rows_onednn)
    x = torch.randn(rows, 24)
    with torch.no_grad():
        y = fast(x)
    assert y.grad_fn is None and not y.requires_grad
    torch.testing.assert_close(y, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)


def test_the_few_rows_choice_is_measured_once_and_cached(tmp_path, monkeypatch):
    from llmos.kernels import choice

    monkeypatch.setenv("LLMOS_CACHE_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(choice, "measure_few_rows", lambda: calls.append(1) or {"few_rows_onednn": False})
    assert choice.few_rows_onednn() is False and choice.few_rows_onednn() is False
    assert calls == [1] and (tmp_path / "kernels.json").is_file()


def test_the_few_rows_measurement_times_both_kernels():
    from llmos.kernels import choice

    timings = choice.measure_few_rows()
    assert all(timings[f"{k}_{r}_row_us"] > 0 for k in ("mkl", "onednn") for r in (1, 4))
    assert isinstance(timings["few_rows_onednn"], bool)


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
