"""ggml's quantized blocks reach LLMOS's quantized linears with their codes unchanged and their values exact
(Q4_K into int4, Q5_0 and Q8_0 into int8 per group of 32), or, for Q5_K and Q6_K, requantized within half
an int8 step."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
from gguf_models import K_QUANTS, write_gguf_model

from llmos import AutoModelForCausalLM
from llmos.checkpoint.gguf_weights import FusedWeight, GGUFWeight, _fuse
from llmos.kernels import GroupInt8Linear, Int4Linear, adapt_activations


def _blocks(qtype: str, rows: int = 32, columns: int = 512, seed: int = 0) -> GGUFWeight:
    rng = np.random.default_rng(seed)
    kind = gguf.GGMLQuantizationType[qtype]
    if qtype in K_QUANTS:  # the gguf package writes no K-quants: random bytes with small f16 scales are valid blocks
        block, size = gguf.GGML_QUANT_SIZES[kind]
        raw = rng.integers(0, 256, (rows, columns // block, size), dtype=np.uint8)
        for offset in K_QUANTS[qtype]:
            scale = rng.uniform(5e-5, 2e-4, raw.shape[:2]).astype(np.float16)
            raw[..., offset:offset + 2] = scale.view(np.uint8).reshape(*raw.shape[:2], 2)
        return GGUFWeight(qtype, raw.reshape(rows, -1), (rows, columns))
    values = (rng.standard_normal((rows, columns)) * 0.05).astype(np.float32)
    return GGUFWeight(qtype, gguf.quants.quantize(values, kind), (rows, columns))


@pytest.mark.parametrize("qtype, kernel", [("Q4_K", Int4Linear), ("Q5_0", GroupInt8Linear),
                                           ("Q8_0", GroupInt8Linear), ("Q4_1", Int4Linear)])
def test_blocks_become_kernel_codes_that_give_the_files_values(qtype, kernel):
    weight = _blocks(qtype)
    module = weight.kernel_module()
    assert type(module) is kernel
    torch.testing.assert_close(module.dequantize(), weight.to_float(), rtol=0, atol=1e-6)


def test_q5_0_codes_are_the_files_five_bit_values_less_16():
    weight = _blocks("Q5_0")
    codes, scales = weight.codes()
    assert codes.dtype == torch.int8 and int(codes.min()) >= -16 and int(codes.max()) <= 15
    assert torch.equal(codes.float() * scales.repeat_interleave(32, dim=1), weight.to_float())  # exactly


@pytest.mark.parametrize("qtype", ["Q5_K", "Q6_K"])
def test_q5_k_and_q6_k_are_requantized_to_int8_within_half_a_step(qtype):
    weight = _blocks(qtype)
    module = weight.kernel_module()
    values = weight.to_float()
    step = values.view(32, -1, 32).abs().amax(-1, keepdim=True) / 127  # int8 step of each group of 32
    error = (module.dequantize().view(32, -1, 32) - values.view(32, -1, 32)).abs()
    assert type(module) is GroupInt8Linear and bool((error <= step * 0.51 + 1e-7).all())


def test_parts_of_different_types_on_one_kernel_fuse_as_codes():
    """Gemma 3's Q4_K_M file: Q5_0 queries and keys, Q8_0 values: one int8 kernel, the exact values."""
    parts = {0: _blocks("Q5_0", seed=1), 1: _blocks("Q5_0", seed=2), 2: _blocks("Q8_0", seed=3)}
    fused = _fuse(parts)
    assert isinstance(fused, FusedWeight) and fused.kernel_kind == "int8" and fused.shape == (96, 512)
    expected = torch.cat([p.to_float() for p in parts.values()])
    torch.testing.assert_close(fused.kernel_module().dequantize(), expected, rtol=0, atol=0)
    mixed = _fuse({0: _blocks("Q4_K", seed=1), 1: _blocks("Q6_K", seed=2)})  # int4 beside int8: floats
    assert mixed.qtype == "F32" and mixed.kernel_kind is None


@pytest.mark.parametrize("tensor_type, kernel", [("Q4_K", Int4Linear), ("Q6_K", GroupInt8Linear),
                                                 ("Q5_0", GroupInt8Linear)])
def test_auto_loads_each_type_into_its_kernel(tmp_path, tensor_type, kernel):
    path = write_gguf_model(tmp_path, "llama", tensor_type)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert isinstance(model.transformer.blocks[0].mlp.down, kernel)
    adapt_activations(model, False)  # 16-bit activation codes: what is compared here is the loaded weights
    plain = AutoModelForCausalLM.from_pretrained(path, quantize="none")
    ids = torch.randint(0, plain.config.vocab_size, (1, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(ids).logits, plain(ids).logits
    assert (a - b).abs().max() < 0.05 * b.abs().max()  # the same weights; activations quantized on the way in
