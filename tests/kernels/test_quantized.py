"""Weight-only int8 / int4 linears: their codes stand for the weights, and both paths compute with them."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmos.config import ModelConfig
from llmos.errors import LLMOSError
from llmos.kernels import (
    Int4Linear,
    Int8Linear,
    adapt_activations,
    build,
    int_dot,
    quantize,
    use_kernels,
)
from llmos.kernels.quantized import pack_nibbles, unpack_nibbles
from llmos.model import CausalLM

CLASSES = {"int8": Int8Linear, "int4": Int4Linear}


def _layer(out_features=48, in_features=64, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features, bias=bias)


def test_nibble_packing_round_trips_and_puts_even_elements_low():
    codes = torch.randint(0, 16, (5, 8), dtype=torch.uint8)
    packed = pack_nibbles(codes)
    assert packed.shape == (5, 4) and packed.dtype == torch.uint8
    assert torch.equal(packed[:, 0], codes[:, 0] | (codes[:, 1] << 4))
    assert torch.equal(unpack_nibbles(packed), codes)


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_codes_approximate_the_weight_within_half_a_step(method):
    layer = _layer()
    q = CLASSES[method].from_float(layer.weight, layer.bias)
    error = (q.dequantize() - layer.weight).abs()
    if method == "int8":
        step = q.scales.float()[:, None]
    else:
        step = q.scales.float().repeat_interleave(32, dim=1)
    assert (error <= step * 0.5 + 1e-6).all()
    assert error.max() > 0  # really quantized


@pytest.fixture(params=["int_dot", "torch"])
def kernel(request, monkeypatch):
    """Which kernel serves few rows (forced); int_dot is skipped, saying why, where it did not build."""
    if request.param == "int_dot" and not int_dot.available():
        pytest.skip(f"int_dot is not built here: {build.unavailable_reason()}")
    monkeypatch.setenv("LLMOS_INT_KERNEL", request.param)
    return request.param


def few_rows_reference(x, weight, bias, kernel):
    """What the few-row kernels compute: int_dot with 16-bit input codes (within 1/512 of a block's
    step, see test_int_dot), torch's kernels with bf16 activations."""
    if kernel == "int_dot":
        return F.linear(x, weight, bias), dict(rtol=1e-4, atol=1e-4)
    return F.linear(x.bfloat16().float(), weight, bias), dict(rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("method", ["int8", "int4"])
@pytest.mark.parametrize("rows", [1, 3, 40, 600])  # up to the kernel's rows: it; more: dequantized fp32
def test_forward_computes_with_the_dequantized_weight(method, rows, kernel):
    layer = _layer()
    q = CLASSES[method].from_float(layer.weight, layer.bias)
    assert q.kernel.startswith(kernel)
    x = torch.randn(2, rows, 64)
    with torch.no_grad():
        y = q(x)
    assert y.shape == (2, rows, 48) and y.dtype == torch.float32
    if 2 * rows <= max(16, q.int_dot_rows):
        reference, tolerance = few_rows_reference(x, q.dequantize(), layer.bias, kernel)
        torch.testing.assert_close(y, reference, **tolerance)
    else:
        torch.testing.assert_close(y, F.linear(x, q.dequantize(), layer.bias), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_state_dict_holds_the_documented_layout_and_loads_back(method):
    layer = _layer(bias=False)
    q = CLASSES[method].from_float(layer.weight)
    state = q.state_dict()
    if method == "int8":
        assert set(state) == {"qweight", "scales"}
        assert state["qweight"].dtype == torch.int8 and state["qweight"].shape == (48, 64)
        assert state["scales"].shape == (48,)
    else:
        assert set(state) == {"qweight", "scales", "zeros"}  # the kernel's packed copy is not saved
        assert state["qweight"].dtype == torch.uint8 and state["qweight"].shape == (48, 32)
        assert state["scales"].shape == state["zeros"].shape == (48, 2)
    assert all(v.dtype == torch.bfloat16 for k, v in state.items() if k != "qweight")
    other = CLASSES[method].from_float(_layer(bias=False, seed=1).weight)
    other.load_state_dict(state)
    x = torch.randn(1, 64)
    with torch.no_grad():
        assert torch.equal(other(x), q(x))  # includes the repacked kernel copy


def test_quantize_swaps_the_fitting_linears_and_keeps_the_embedding_float():
    config = ModelConfig(vocab_size=96, d_model=64, n_layers=2, n_heads=4, max_seq_len=32, d_ff=80)
    torch.manual_seed(0)
    model = CausalLM(config).eval()
    ids = torch.randint(0, 96, (1, 10))
    with torch.no_grad():
        before = model(ids).logits
    quantize(model, "int4")
    kinds = {name: type(m).__name__ for name, m in model.named_modules() if "Linear" in type(m).__name__}
    assert kinds["lm_head"] == "Int4Linear" and kinds["transformer.blocks.0.attn.qkv"] == "Int4Linear"
    assert kinds["transformer.blocks.0.mlp.down"] == "Linear"  # in = d_ff = 80 is not a multiple of 32
    assert model.transformer.embed.tokens.weight.dtype == torch.float32
    with torch.no_grad():
        after = model(ids).logits
    assert (after - before).abs().max() < 0.05 * before.abs().max()


def test_every_quantized_linear_but_the_head_takes_adaptive_activation_codes():
    model = quantize(CausalLM(ModelConfig.from_preset("micro", d_model=64)), "int8")
    assert not any(m.adaptive_activations for m in model.modules() if isinstance(m, Int8Linear))  # 16-bit codes until
    use_kernels(model)  # the fast paths go in
    adaptive = {name: m.adaptive_activations for name, m in model.named_modules() if isinstance(m, Int8Linear)}
    assert adaptive.pop("lm_head") is False and adaptive and all(adaptive.values())
    adapt_activations(model, False)
    assert not any(m.adaptive_activations for m in model.modules() if isinstance(m, Int8Linear))


def test_quantize_can_skip_layers_by_name():
    config = ModelConfig.from_preset("micro", d_model=64)
    model = quantize(CausalLM(config), "int8", skip=lambda name: name == "lm_head")
    assert type(model.lm_head) is nn.Linear
    assert isinstance(model.transformer.blocks[0].attn.qkv, Int8Linear)


def test_an_unknown_method_names_the_valid_ones():
    with pytest.raises(LLMOSError, match=r"'int3'.*\['int8', 'int4'\]"):
        quantize(CausalLM(ModelConfig.from_preset("micro")), "int3")


@pytest.mark.parametrize("rows", [1, 5, 40])
def test_grouped_int8_runs_its_codes_exactly_through_either_kernel(rows, kernel):
    from llmos.kernels import GroupInt8Linear

    layer = _layer(out_features=32, in_features=96)
    q = GroupInt8Linear.from_float(layer.weight, layer.bias)
    assert q.qweight.dtype == torch.int8 and q.scales.shape == (32, 3)
    assert (q.dequantize() - layer.weight).abs().max() <= q.scales.float().max() / 2 + 1e-6
    x = torch.randn(rows, 96)
    with torch.no_grad():
        y = q(x)
    if rows <= max(16, q.int_dot_rows):  # torch's int4 kernel takes bf16 activations and returns bf16 (8 significant bits)
        expected, tolerance = few_rows_reference(x, q.dequantize(), layer.bias, kernel)
        torch.testing.assert_close(y, expected, **tolerance)
    else:
        expected = F.linear(x.double(), q.dequantize().double(), layer.bias.double()).float()
        torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


def test_int8_codes_at_an_odd_address_are_copied_to_aligned_memory(monkeypatch):
    """torch's int8 kernel crashes on unaligned codes (as a memory-mapped file can hold them)."""
    monkeypatch.setenv("LLMOS_INT_KERNEL", "torch")
    layer = _layer(bias=False)
    reference = Int8Linear.from_float(layer.weight)
    storage = torch.empty(48 * 64 + 1, dtype=torch.int8)
    odd = storage[1:].view(48, 64)
    odd.copy_(reference.qweight)
    assert odd.data_ptr() % 64 != 0
    loaded = Int8Linear.from_float(_layer(bias=False, seed=3).weight)
    loaded.load_state_dict({"qweight": odd, "scales": reference.scales}, assign=True)
    assert loaded.packed.data_ptr() % 64 == 0  # the copy torch's kernel reads
    x = torch.randn(2, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), reference(x))
