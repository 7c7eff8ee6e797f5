"""Layer 3: ggml's quantized blocks as the codes and scales of LLMOS's quantized linears.

Each function takes a weight's raw rows (out, bytes) and returns what a kernel in
`llmos.kernels` stores, with the codes unchanged and the scales exact in float32:

- int4 (`Int4Linear`: w = (code - 8) * scale + zero per 32 inputs):
  Q4_0 (w = d (q - 8)), Q4_1 (w = d q + m, zero m + 8d), and Q4_K: a super-block
  of 256 with an f16 d and dmin and 6-bit scale sc and min m per sub-block of 32,
  w = (d sc) q - (dmin m), so scale = d sc and zero = 8 d sc - dmin m per sub-block
  (products of an f16 and a 6-bit integer: exact in float32).
- int8 in groups of 32 (`GroupInt8Linear`: w = code * scale): Q8_0 (int8 codes,
  f16 d) and Q5_0 (5-bit q with f16 d, w = d (q - 16): the code q - 16 fits int8).

Q5_K and Q6_K have no exact equal there (Q5_K's per-group minimum has no place in
the symmetric int8 layout; Q6_K's scales are per 16 inputs, their products with
the codes overflow int8), so `gguf_weights` requantizes them from their float
values to int8 per group of 32: not exact (at most half an int8 step, max|w| / 254
of a group, about an eighth of Q6_K's own step), but 8 bits a weight and on the
int8 kernel. `quantize="none"` loads every type as exact floats instead.
"""

from __future__ import annotations

import numpy as np
import torch

from llmos.kernels.quantized import pack_nibbles

INT4_TYPES = ("Q4_0", "Q4_1", "Q4_K")  # exact int4 codes
INT8_TYPES = ("Q8_0", "Q5_0")  # exact int8 codes per group of 32
REQUANTIZED_TYPES = ("Q5_K", "Q6_K")  # int8 per group of 32, requantized from the float values


def kernel_kind(qtype: str) -> str | None:
    """"int4", "int8" (per group of 32) or None (a float type) for a ggml type."""
    if qtype in INT4_TYPES:
        return "int4"
    if qtype in INT8_TYPES or qtype in REQUANTIZED_TYPES:
        return "int8"
    return None


def _f16(raw: np.ndarray) -> np.ndarray:
    """float32 values of little-endian f16 in the last axis' 2 bytes."""
    return raw.copy().view(np.float16)[..., 0].astype(np.float32)


def int4_codes(qtype: str, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(qweight (out, in/2) uint8, scales (out, in/32), zeros (out, in/32)) of Int4Linear."""
    out = rows.shape[0]
    if qtype == "Q4_K":
        import gguf

        blocks = rows.reshape(out, -1, 144)
        d, dmin = _f16(blocks[..., 0:2]), _f16(blocks[..., 2:4])  # (out, n)
        sc, m = gguf.quants.Q4_K.get_scale_min(blocks[..., 4:16].reshape(-1, 12))
        sc = sc.reshape(out, -1, 8).astype(np.float32)
        m = m.reshape(out, -1, 8).astype(np.float32)
        qs = blocks[..., 16:].reshape(out, -1, 4, 32)  # 4 chunks of 32 bytes: sub-blocks 2c (low), 2c+1 (high)
        codes = np.stack([qs & 15, qs >> 4], axis=3).reshape(out, -1)
        scales = d[..., None] * sc
        zeros = 8 * scales - dmin[..., None] * m
        return pack_nibbles(torch.from_numpy(codes)), torch.from_numpy(scales.reshape(out, -1)), \
            torch.from_numpy(zeros.reshape(out, -1))
    head = 4 if qtype == "Q4_1" else 2  # f16 d (and f16 m) before the 16 code bytes
    blocks = rows.reshape(out, -1, head + 16)
    d = _f16(blocks[..., 0:2])
    qs = blocks[..., head:]
    codes = np.concatenate([qs & 15, qs >> 4], axis=-1).reshape(out, -1)  # elements 0..31
    if qtype == "Q4_1":  # w = d * code + m = (code - 8) * d + (m + 8 d)
        zeros = _f16(blocks[..., 2:4]) + 8 * d
    else:  # w = d * (code - 8)
        zeros = np.zeros_like(d)
    return pack_nibbles(torch.from_numpy(codes)), torch.from_numpy(d), torch.from_numpy(zeros)


def int8_codes(qtype: str, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(qweight (out, in) int8, scales (out, in/32)) of GroupInt8Linear for Q8_0 / Q5_0 rows."""
    out = rows.shape[0]
    if qtype == "Q8_0":
        blocks = rows.reshape(out, -1, 2 + 32)
        codes = blocks[..., 2:].copy().view(np.int8).reshape(out, -1)
        return torch.from_numpy(codes), torch.from_numpy(_f16(blocks[..., 0:2]))
    blocks = rows.reshape(out, -1, 22)  # Q5_0: f16 d, 4 bytes of fifth bits, 16 bytes of low nibbles
    high = blocks[..., 2:6].copy().view(np.uint32)  # (out, n, 1)
    bits = ((high >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)  # (out, n, 32)
    low = np.concatenate([blocks[..., 6:] & 15, blocks[..., 6:] >> 4], axis=-1)  # elements 0..15, 16..31
    codes = ((low | (bits << 4)).astype(np.int16) - 16).astype(np.int8).reshape(out, -1)
    return torch.from_numpy(codes), torch.from_numpy(_f16(blocks[..., 0:2]))
