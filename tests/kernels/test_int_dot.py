"""The integer dot-product kernels (int_dot): every code path computes the exact product of the
weight codes with the input's 16-bit codes (or, adaptive, 16 bits only in the blocks one value
dominates), GGUF blocks go in unchanged, and the ops compile."""

import os
import subprocess
import sys

import gguf
import numpy as np
import pytest
import torch
from torch import nn

from llmos.checkpoint.gguf_weights import GGUFWeight
from llmos.kernels import build, choice, int_dot
from llmos.kernels.quantized import GroupInt8Linear, Int4Linear, Int8Linear, pack_nibbles


@pytest.fixture
def isas() -> list[str]:
    """The code paths this CPU runs; the test is skipped (saying why) where the extension did not build."""
    if not int_dot.available():  # built by the session fixture in tests/conftest.py
        pytest.skip(f"int_dot is not built here: {build.unavailable_reason()}")
    return int_dot.supported_isas()


def fine_blocks(x: torch.Tensor) -> torch.Tensor:
    """(rows, blocks, 1) bool: the blocks where one value holds over half the energy (max x^2 > sum x^2 / 2)."""
    blocks = x.view(x.shape[0], -1, 32).double()
    return 2 * blocks.abs().amax(-1, keepdim=True) ** 2 > (blocks ** 2).sum(-1, keepdim=True)


def quantized_input(x: torch.Tensor, adaptive: bool = False) -> torch.Tensor:
    """What the kernels compute with: per block of 32, dx = max|x| / 127, hi = round(x / dx),
    lo = round((x - hi dx) * 256 / dx), x ~ (256 hi + lo) dx / 256 (float64 residual: exactly
    the kernel's fused multiply-add, rounded once). Adaptive: lo = 0 outside `fine_blocks`."""
    blocks = x.view(x.shape[0], -1, 32)
    dx = blocks.abs().amax(-1, keepdim=True) / 127
    inverse = torch.where(dx != 0, 1 / dx, torch.zeros_like(dx))
    hi = torch.round(blocks * inverse)
    residual = (blocks.double() - hi.double() * dx.double()).float()
    lo = torch.round(residual * (256 * inverse)).clamp(-127, 127)
    if adaptive:
        lo = torch.where(fine_blocks(x), lo, torch.zeros_like(lo))
    return ((256 * hi.double() + lo.double()) * (dx.double() / 256)).view_as(x)


def random_weights(kind: str, out_features: int, in_features: int, seed: int = 0, scales_dtype=torch.float32):
    """(packed arguments of the op, the float64 weight they stand for) for one of four formats, with
    scales (and Q4_1 mins) that are float16 values (packed as float16) or any float32 values."""
    g = torch.Generator().manual_seed(seed)
    blocks = in_features // 32
    if kind.startswith("int4"):
        codes = torch.randint(0, 16, (out_features, in_features), generator=g, dtype=torch.uint8)
        scales = (torch.rand(out_features, blocks, generator=g) / 50 + 1e-3).to(scales_dtype).float()
        mins = (torch.randn(out_features, blocks, generator=g) / 50).to(scales_dtype).float()
        zeros = torch.zeros_like(scales) if kind == "int4-q4_0" else mins + 8 * scales  # GGUF's Q4_0 / Q4_1
        weight = (codes.double().view(out_features, blocks, 32) - 8) * scales.double()[..., None] + zeros.double()[..., None]
        packed = int_dot.pack_int4(pack_nibbles(codes), scales, zeros)
        return packed, weight.view(out_features, in_features)
    codes = torch.randint(-128, 128, (out_features, in_features), generator=g, dtype=torch.int8)
    if kind == "int8-channel":
        scales = (torch.rand(out_features, generator=g) / 50).to(scales_dtype).float()
        weight = codes.double() * scales.double()[:, None]
    else:
        scales = (torch.rand(out_features, blocks, generator=g) / 50).to(scales_dtype).float()
        weight = (codes.double().view(out_features, blocks, 32) * scales.double()[..., None]).view_as(codes)
    return int_dot.pack_int8(codes, scales), weight


def run(kind: str, packed, x: torch.Tensor, out_features: int, isa: int, adaptive: bool = False) -> torch.Tensor:
    if kind.startswith("int4"):
        return int_dot.int4_linear(x, *packed, out_features, isa, adaptive)
    return int_dot.int8_linear(x, *packed, out_features, isa, adaptive)


@pytest.mark.parametrize("kind", ["int4-q4_0", "int4-q4_1", "int8-block", "int8-channel"])
@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512bw", "avx512-vnni"])
@pytest.mark.parametrize("scales_dtype", [torch.float16, torch.float32])
@pytest.mark.parametrize("adaptive", [False, True])
def test_every_code_path_computes_the_exact_product_of_the_quantized_input(kind, isa, scales_dtype, adaptive,
                                                                          isas):
    if isa not in isas:
        pytest.skip(f"this CPU has no {isa} (it has {isas})")
    torch.manual_seed(1)
    for out_features, in_features in ((40, 96), (16, 32), (7, 64), (48, 160)):  # odd groups and block counts
        packed, weight = random_weights(kind, out_features, in_features, scales_dtype=scales_dtype)
        assert all(t.dtype == scales_dtype for t in packed[1:])  # f16 values are packed as f16
        for rows in (1, 2, 3, 4, 5, 8, 13, 16):
            x = torch.randn(rows, in_features)
            x[:, 5] *= 40  # an outlier channel, as real hidden states have
            if adaptive:  # rows whose blocks differ: an outlier in some, none in others
                x[::2, 40:] /= 40
                x[1::3, 32:40] *= 30
            y = run(kind, packed, x, out_features, int_dot.ISAS.index(isa), adaptive)
            exact = quantized_input(x, adaptive) @ weight.T
            assert y.shape == (rows, out_features) and y.dtype == torch.float32
            assert (y.double() - exact).abs().max() <= 1e-5 * exact.abs().max(), (out_features, in_features, rows)
            # against the float input: each value is within dx / 512 (16-bit codes) or dx / 2 (8-bit),
            # dx = its block's max / 127
            fine = fine_blocks(x) if adaptive else torch.ones(rows, in_features // 32, 1, dtype=torch.bool)
            step = x.view(rows, -1, 32).abs().amax(-1, keepdim=True) / 127
            step = torch.where(fine, step / 512, step / 2).expand(-1, -1, 32).reshape_as(x)
            bound = step.double() @ weight.abs().T
            assert ((y.double() - x.double() @ weight.T).abs() <= bound + 1e-5 * exact.abs().max()).all()


def test_every_code_path_gives_the_same_result(isas):
    packed, _ = random_weights("int4-q4_1", 64, 576)
    x = torch.randn(3, 576)
    x[0, :32] /= 50
    x[1, 64:96] = 0.01
    x[1, 70] = 3.0  # one value dominates this block: adaptive keeps its lo codes
    for adaptive in (False, True):
        results = [int_dot.int4_linear(x, *packed, 64, index, adaptive) for index in range(len(isas))]
        for y in results[1:]:
            torch.testing.assert_close(y, results[0], rtol=1e-6, atol=1e-6)


def unpack_int4(codes: torch.Tensor, out_features: int) -> torch.Tensor:
    """The int_dot int4 layout read back into (out, in) codes (byte t * 64 + 4 i + k of a group's
    block: row 16 g + i, inputs 4t + k in the low nibble and 4t + 16 + k in the high one)."""
    groups = codes.shape[0]
    by_block = codes.view(groups, -1, 4, 16, 4)  # (group, block, t, lane, k)
    low, high = by_block & 15, by_block >> 4
    block = torch.cat([low, high], dim=2)  # (group, block, 8 steps, lane, k): step s holds inputs 4s..4s+3
    rows = block.permute(0, 3, 1, 2, 4).reshape(groups * 16, -1)
    return rows[:out_features]


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q8_0"])
def test_gguf_blocks_reach_the_kernel_with_their_codes_and_f16_scales_unchanged(qtype, isas, monkeypatch):
    monkeypatch.setenv("LLMOS_INT_KERNEL", "int_dot")
    rng = np.random.default_rng(0)
    values = (rng.standard_normal((48, 128)) * 0.05).astype(np.float32)
    kind = gguf.GGMLQuantizationType[qtype]
    weight = GGUFWeight(qtype, gguf.quants.quantize(values, kind), (48, 128))
    module = weight.kernel_module()
    file_values = torch.from_numpy(gguf.quants.dequantize(weight.rows, kind).reshape(48, 128).astype(np.float32))
    blocks = weight.rows.reshape(48, 4, -1)
    d = torch.from_numpy(blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32))
    packed_scales = module.packed_scales.view(-1, 4, 16).transpose(1, 2).reshape(-1, 4)[:48]
    assert packed_scales.dtype == torch.float16 and torch.equal(packed_scales.float(), d)  # exactly, not bf16
    if qtype == "Q8_0":
        codes = torch.from_numpy(blocks[..., 2:].copy().view(np.int8).reshape(48, 128))
        stored = module.packed.view(-1, 4, 8, 16, 4).permute(0, 3, 1, 2, 4).reshape(-1, 128)[:48]
        assert torch.equal((stored ^ 0x80).view(torch.int8), codes)  # stored as c + 128
    else:
        qs = blocks[..., 4 if qtype == "Q4_1" else 2:]
        codes = torch.from_numpy(np.concatenate([qs & 15, qs >> 4], axis=-1).reshape(48, 128))
        assert torch.equal(unpack_int4(module.packed, 48), codes)
        if qtype == "Q4_1":
            m = torch.from_numpy(blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32))
            packed_mins = module.packed_mins.view(-1, 4, 16).transpose(1, 2).reshape(-1, 4)[:48]
            assert torch.equal(packed_mins.float(), m)  # the file's min, back from zero = m + 8d
    torch.testing.assert_close(module.dequantize(), file_values, rtol=0, atol=0)
    x = torch.randn(2, 128)
    with torch.no_grad():
        y = module(x)
    exact = quantized_input(x) @ file_values.double().T
    assert (y.double() - exact).abs().max() <= 1e-5 * exact.abs().max()


@pytest.mark.parametrize("cpp_wrapper", [False, True])
def test_the_ops_stay_inside_a_fullgraph_compiled_graph(cpp_wrapper, isas, monkeypatch, tmp_path):
    import torch._inductor.config as inductor_config

    monkeypatch.setenv("LLMOS_INT_KERNEL", "int_dot")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # compiled now: no graph cached against older ops
    torch.manual_seed(0)
    model = nn.Sequential(Int4Linear.from_float(torch.randn(64, 96)), nn.ReLU(),
                          GroupInt8Linear.from_float(torch.randn(32, 64)), Int8Linear.from_float(torch.randn(16, 32)))
    assert {m.kernel.split(":")[0] for m in model if hasattr(m, "kernel")} == {"int_dot"}
    x = torch.randn(1, 2, 96)
    torch._dynamo.reset()
    with torch.no_grad(), inductor_config.patch(cpp_wrapper=cpp_wrapper):
        assert torch._dynamo.explain(model)(x).graph_break_count == 0
        compiled = torch.compile(model, fullgraph=True)
        assert torch.equal(compiled(x), model(x))


def test_quantized_linears_name_the_kernel_that_serves_few_rows(isas, monkeypatch):
    monkeypatch.setenv("LLMOS_INT_KERNEL", "int_dot")
    monkeypatch.setenv("LLMOS_INT_DOT_ISA", isas[-1])
    layer = Int4Linear.from_float(torch.randn(32, 64))
    assert layer.kernel == f"int_dot:{isas[-1]}"
    assert f"kernel={layer.kernel}" in repr(layer)
    monkeypatch.setenv("LLMOS_INT_KERNEL", "torch")
    assert Int8Linear.from_float(torch.randn(32, 64)).kernel == "torch:_weight_int8pack_mm"
    monkeypatch.setenv("LLMOS_INT_KERNEL", "int_dot")
    assert Int8Linear.from_float(torch.randn(32, 40)).kernel == "torch:_weight_int8pack_mm"  # in % 32 != 0


def test_a_code_path_the_cpu_lacks_is_refused_by_name(isas, monkeypatch):
    missing = [isa for isa in int_dot.ISAS if isa not in isas] or ["avx1024"]
    monkeypatch.setenv("LLMOS_INT_DOT_ISA", missing[0])
    with pytest.raises(ValueError, match=f"{missing[0]!r} is not available on this CPU"):
        int_dot.isa_index()


def test_the_int_kernel_choice_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LLMOS_INT_KERNEL", raising=False)
    monkeypatch.setattr(choice, "_int_choice", {})
    monkeypatch.setattr(int_dot, "available", lambda: True)
    monkeypatch.setattr(int_dot, "isa_name", lambda isa=None: "avx2")
    calls = []
    measured = {"choice": {"int4": "torch", "int8-group32": "int_dot", "int8": "int_dot"}}
    monkeypatch.setattr(choice, "measure_int_kernels", lambda: calls.append(1) or measured)
    assert choice.int_kernel_for("int4", 64) == "torch" and choice.int_kernel_for("int8", 64) == "int_dot"
    monkeypatch.setattr(choice, "_int_choice", {})  # a new process reads the file
    assert choice.int_kernel_for("int8-group32", 64) == "int_dot"
    assert calls == [1] and (tmp_path / "kernels.json").is_file()
    monkeypatch.setenv("LLMOS_INT_KERNEL", "fastest")
    with pytest.raises(ValueError, match=r"LLMOS_INT_KERNEL='fastest'.*\['auto', 'int_dot', 'torch'\]"):
        choice.int_kernel_for("int4", 64)


def test_the_measurement_times_both_kernels_for_each_method(isas, monkeypatch):
    monkeypatch.setattr(choice, "DECODE_SHAPES", (((32, 64), 2),))
    timings = choice.measure_int_kernels()
    for method in choice.INT_METHODS:
        assert timings[method]["int_dot"] > 0 and timings[method]["torch"] > 0
        assert timings["choice"][method] == ("torch" if timings[method]["torch/int_dot"] < 0.8 else "int_dot")


def test_without_a_compiler_quantized_linears_use_torch_kernels_and_say_so_once(tmp_path):
    script = ("import torch\nfrom llmos.kernels import Int4Linear\n"
              "layers = [Int4Linear.from_float(torch.randn(32, 64)) for _ in range(3)]\n"
              "print(layers[0].kernel, tuple(layers[2](torch.randn(1, 64)).shape))\n")
    env = {**os.environ, "LLMOS_CACHE_DIR": str(tmp_path), "CXX": str(tmp_path / "no-such-g++"),
           "LLMOS_INT_KERNEL": "auto", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "torch:_weight_int4pack_mm_for_cpu (1, 32)"
    said = [line for line in result.stderr.splitlines() if line.startswith("llmos:")]
    assert len(said) == 2 and "building" in said[0] and "not available" in said[1] and "no-such-g++" in said[1]


def test_the_float_reference_of_the_tests_is_the_documented_16_bit_rounding():
    x = torch.tensor([[127.0, 0.3, -0.25, 2.0 / 3] + [0.0] * 28])  # dx = 1: steps of 1 and 1/256
    assert torch.equal(quantized_input(x)[0, :4].float(), torch.tensor([127.0, 0.30078125, -0.25, 0.66796875]))
    assert (quantized_input(x) - x).abs().max() <= 1.0 / 512
