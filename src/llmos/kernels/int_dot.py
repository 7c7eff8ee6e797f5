"""Layer 2b (kernels): the integer dot-product kernels as torch ops, and the weight layouts they read.

`int4_linear` / `int8_linear` call `torch.ops.llmos.int4_linear` / `int8_linear` (csrc/int_dot.cpp,
built and loaded by `llmos.kernels.build`; the C++ file's header explains the arithmetic). Each
call quantizes its float32 input per block of 32, as llama.cpp's Q8 activations, but to 16 bits
(two int8 codes, hi and a residual lo at 1/256 the step: plain int8 codes flip SmolLM2's greedy
answers), then every output row takes exact integer dot products of its 4- or 8-bit codes with
both, block by block, scaled in float32. With `adaptive=True` only the blocks where one value
holds over half the block's energy keep their lo codes (the others' are 0 and skipped, so such
a block costs half): on SmolLM2 a perplexity 0.04% above the 16-bit codes' (+0.23% with 8 bits
everywhere). Both ops have fake (meta) implementations, so
torch.compile(fullgraph=True) keeps them inside its graph, with or without Inductor's cpp_wrapper.

The ops read weights in their own layout, made once at load time from what a module stores:
output rows in groups of 16, per block of 32 inputs, so that one SIMD register holds 4
consecutive codes of 16 (or 8) output rows. Code values are never changed.

- `pack_int4(qweight, scales, zeros)`: codes w = (c - 8) * scale + zero become the kernel's
  w = scale * c + min (min = zero - 8 * scale, in float32: GGUF's Q4_0 min -8d exactly, and for
  Q4_1, whose zero is m + 8d, its m back), two 4-bit codes per byte.
- `pack_int8(qweight, scales)`: the int8 codes stored as c + 128 (vpdpbusd's unsigned operand),
  a float32 scale per block of 32; a per-output-channel scale is repeated over the row's blocks.

Scales are kept exactly: as float16 when every one of a layer's is a float16 value (GGUF's are; the
kernels read 2 bytes a block less, decoding is memory-bound), float32 otherwise. The `isa` argument picks the code path
("scalar", "avx2", "avx512bw", "avx512-vnni" by index, -1 for the best this CPU has;
LLMOS_INT_DOT_ISA forces one, e.g. to run the AVX2 path on an AVX-512 host).
"""

from __future__ import annotations

import functools
import os

import torch

from llmos.kernels import build

BLOCK = 32
LANES = 16  # output rows per packed group
ISAS = ("scalar", "avx2", "avx512bw", "avx512-vnni")  # the ops' `isa` argument is the index


def available() -> bool:
    """Whether the ops are loaded (building the extension once if needed); see `build.load`."""
    loaded = build.load()
    if loaded:
        _register_fakes()
    return loaded


def best_isa() -> str:
    return ISAS[torch.ops.llmos.int_dot_best_isa()]


def supported_isas() -> list[str]:
    """The code paths this CPU runs, scalar first."""
    return list(ISAS[: torch.ops.llmos.int_dot_best_isa() + 1])


def isa_index(isa: str | None = None) -> int:
    """The ops' isa argument for `isa` (None: LLMOS_INT_DOT_ISA, or -1 = the best the CPU has)."""
    isa = isa or os.environ.get("LLMOS_INT_DOT_ISA") or None
    if isa is None:
        return -1
    if isa not in supported_isas():
        raise ValueError(f"int_dot code path {isa!r} is not available on this CPU; expected one of "
                         f"{supported_isas()}")
    return ISAS.index(isa)


def isa_name(isa: str | None = None) -> str:
    index = isa_index(isa)
    return best_isa() if index < 0 else ISAS[index]


def fits(in_features: int) -> bool:
    return in_features > 0 and in_features % BLOCK == 0


def _lanes(t: torch.Tensor) -> torch.Tensor:
    """(out, ...) -> (groups, 16, ...): output rows in groups of 16, the last one padded with zeros."""
    pad = -t.shape[0] % LANES
    if pad:
        t = torch.cat([t, t.new_zeros(pad, *t.shape[1:])])
    return t.view(-1, LANES, *t.shape[1:])


def _per_block(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(out, blocks) float -> (groups, blocks * 16) in `dtype`, a group's 16 rows side by side."""
    grouped = _lanes(values.to(dtype))  # (groups, 16, blocks)
    return grouped.transpose(1, 2).reshape(grouped.shape[0], -1).contiguous()


def scale_dtype(*tables: torch.Tensor) -> torch.dtype:
    """float16 when every value of the tables is one exactly (GGUF's scales are), else float32."""
    exact = all(torch.equal(t.float().half().float(), t.float()) for t in tables)
    return torch.float16 if exact else torch.float32


def _vectors(codes: torch.Tensor) -> torch.Tensor:
    """(out, in) byte codes -> (groups, blocks, 8, 64): per block, 8 vectors whose lane i (4 bytes)
    holds output row 16g + i's codes of 4 consecutive inputs."""
    grouped = _lanes(codes)  # (groups, 16, in)
    groups = grouped.shape[0]
    by_four = grouped.view(groups, LANES, -1, 8, 4)  # (groups, lane, block, step, 4)
    return by_four.permute(0, 2, 3, 1, 4).reshape(groups, -1, 8, LANES * 4)


def pack_int4(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(codes, scales, mins) for `int4_linear` from Int4Linear's stored tensors: qweight (out, in/2)
    uint8 with element 2j in the low nibble, scales and zeros (out, in/32) in any float dtype."""
    codes = torch.stack([qweight & 15, qweight >> 4], dim=-1).view(qweight.shape[0], -1)  # (out, in) 0..15
    vectors = _vectors(codes)  # steps 0-3: inputs 0-15 of the block, steps 4-7: inputs 16-31
    packed = vectors[:, :, :4] | (vectors[:, :, 4:] << 4)
    d = scales.float()
    mins = zeros.float() - 8 * d
    dtype = scale_dtype(d, mins)
    return packed.reshape(packed.shape[0], -1).contiguous(), _per_block(d, dtype), _per_block(mins, dtype)


def pack_int8(qweight: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes, scales) for `int8_linear` from int8 codes (out, in) and scales per block (out, in/32)
    or per output channel (out,)."""
    out_features, in_features = qweight.shape
    if scales.dim() == 1:
        scales = scales[:, None].expand(out_features, in_features // BLOCK)
    offset = qweight.contiguous().view(torch.uint8) ^ 0x80  # c + 128: vpdpbusd's unsigned operand
    vectors = _vectors(offset)
    return vectors.reshape(vectors.shape[0], -1).contiguous(), _per_block(scales, scale_dtype(scales))


def int4_linear(x2: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor,
                out_features: int, isa: int = -1, adaptive: bool = False) -> torch.Tensor:
    """x2 (rows, in) float32 times the packed int4 weight^T -> (rows, out) float32; `isa` from `isa_index`;
    `adaptive`: 16-bit activation codes only in the blocks that need them (see the top)."""
    return torch.ops.llmos.int4_linear(x2, codes, scales, mins, out_features, isa, adaptive)


def int8_linear(x2: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, out_features: int,
                isa: int = -1, adaptive: bool = False) -> torch.Tensor:
    """x2 (rows, in) float32 times the packed int8 weight^T -> (rows, out) float32; as `int4_linear`."""
    return torch.ops.llmos.int8_linear(x2, codes, scales, out_features, isa, adaptive)


@functools.cache
def _register_fakes() -> None:
    """Shapes for tracing (torch.compile, meta tensors): (rows, out) float32 like x."""

    @torch.library.register_fake("llmos::int4_linear")
    def _int4_fake(x, codes, scales, mins, out_features, isa=-1, adaptive=False):
        return x.new_empty(x.shape[0], out_features)

    @torch.library.register_fake("llmos::int8_linear")
    def _int8_fake(x, codes, scales, out_features, isa=-1, adaptive=False):
        return x.new_empty(x.shape[0], out_features)
