"""Layer 3: a GGUF file's tensors under LLMOS parameter names, as floats or as quantized blocks.

llama.cpp's names (`blk.3.attn_q.weight`, `token_embd.weight`, ...) map onto
ours the way Hugging Face names do in `hf_weights`: q/k/v (and SwiGLU's
gate/up) are rows of one fused tensor here. Fusing happens on the raw rows, so
quantized blocks are concatenated as they are, never decoded to do it.

llama.cpp's converter permutes the rows of each head of the Llama Q and K
weights (its RoPE pairs dimension i with i+1; Hugging Face's, and ours, pairs i
with i + head_dim/2). `unpermute_rows` undoes that, again on raw rows: a
quantization block never crosses a row, so the blocks stay untouched.

Each weight is a `GGUFWeight`: its ggml type and rows. `to_float()` decodes it
with the `gguf` package's own dequantizers (every type it knows: F32, F16,
BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K, ...). `kernel_module()` turns Q4_0
and Q4_1 blocks (32 weights: an f16 scale, for Q4_1 an f16 minimum, 16 bytes
of 4-bit codes) into an `llmos.kernels.Int4Linear`, and Q8_0 blocks (an f16
scale, 32 int8 codes) into a `GroupInt8Linear`, without a float detour: the
codes are kept bit for bit and the f16 scales as float32 (exactly; Q4_1's min m
becomes the zero m + 8d of Int4Linear's w = (code - 8) * scale + zero).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from llmos.checkpoint.gguf_file import GGUFError, GGUFFile
from llmos.config import ModelConfig
from llmos.kernels.quantized import pack_nibbles

B = "transformer.blocks.{i}."
TOP_LEVEL = {
    "token_embd": "transformer.embed.tokens",
    "position_embd": "transformer.embed.positions",
    "output_norm": "transformer.final_norm",
    "output": "lm_head",
}
BLOCK = {  # llama.cpp tensor -> (ours, part index within a fused tensor or None)
    "attn_norm": ("attn_norm", None),
    "attn_q": ("attn.qkv", 0),
    "attn_k": ("attn.qkv", 1),
    "attn_v": ("attn.qkv", 2),
    "attn_qkv": ("attn.qkv", None),
    "attn_output": ("attn.out", None),
    "ffn_norm": ("mlp_norm", None),
    "ffn_gate": ("mlp.up", 0),
    "ffn_up": ("mlp.up", 1),  # gpt2 has no gate: there ffn_up is the whole mlp.up
    "ffn_down": ("mlp.down", None),
}
NAME = re.compile(r"^(?:blk\.(?P<i>\d+)\.)?(?P<base>\w+)\.(?P<p>weight|bias)$")
INT4_TYPES = ("Q4_0", "Q4_1")
KERNEL_TYPES = (*INT4_TYPES, "Q8_0")  # blocks that go into a quantized kernel as they are


@dataclass
class GGUFWeight:
    qtype: str  # ggml type name: "F32", "Q4_1", ...
    rows: np.ndarray  # (rows, values) for float types, (rows, bytes) for quantized ones; 1-D vectors
    shape: tuple[int, ...]  # the logical (torch) shape

    def to_float(self) -> torch.Tensor:
        """float32 values with the gguf package's dequantizer for this type."""
        import gguf

        kind = gguf.GGMLQuantizationType[self.qtype]
        values = self.rows if kind == gguf.GGMLQuantizationType.F32 else gguf.quants.dequantize(self.rows, kind)
        return torch.from_numpy(np.array(values, dtype=np.float32)).reshape(self.shape)  # a writable copy

    def int4_codes(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(qweight, scales, zeros) of Int4Linear for Q4_0 / Q4_1 rows: w = (code - 8) * scale + zero."""
        if self.qtype not in INT4_TYPES:
            raise ValueError(f"{self.qtype} blocks are not 4-bit codes in groups of 32")
        out_features = self.rows.shape[0]
        head = 4 if self.qtype == "Q4_1" else 2  # f16 d (and f16 m) before the 16 code bytes
        blocks = self.rows.reshape(out_features, -1, head + 16)
        d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
        qs = blocks[..., head:]
        codes = np.concatenate([qs & 15, qs >> 4], axis=-1).reshape(out_features, -1)  # elements 0..31
        qweight = pack_nibbles(torch.from_numpy(codes))
        if self.qtype == "Q4_1":  # w = d * code + m = (code - 8) * d + (m + 8 d)
            m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
            zeros = m + 8 * d
        else:  # w = d * (code - 8)
            zeros = np.zeros_like(d)
        return qweight, torch.from_numpy(d), torch.from_numpy(zeros)


    def q8_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(qweight int8, scales) of GroupInt8Linear for Q8_0 rows: w = code * scale."""
        if self.qtype != "Q8_0":
            raise ValueError(f"{self.qtype} blocks are not Q8_0")
        blocks = self.rows.reshape(self.rows.shape[0], -1, 2 + 32)
        d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
        codes = blocks[..., 2:].copy().view(np.int8).reshape(self.rows.shape[0], -1)
        return torch.from_numpy(codes), torch.from_numpy(d)

    def kernel_module(self, bias: torch.Tensor | None = None):
        """This weight's blocks in the matching quantized linear (Q4_0/Q4_1 -> int4, Q8_0 -> grouped int8)."""
        from llmos.kernels import GroupInt8Linear, Int4Linear

        if self.qtype == "Q8_0":
            return GroupInt8Linear(*self.q8_codes(), bias)
        return Int4Linear(*self.int4_codes(), bias)


def _weight(gguf: GGUFFile, name: str) -> GGUFWeight:
    tensor = gguf.tensors[name]
    shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))  # ggml lists dims innermost first
    data = np.asarray(tensor.data)
    rows = data.reshape(shape[0], -1) if len(shape) == 2 else data.reshape(-1)
    return GGUFWeight(tensor.tensor_type.name, rows, shape)


def unpermute_rows(weight: GGUFWeight, n_heads: int) -> GGUFWeight:
    """Undo llama.cpp's per-head row interleave of a Llama Q or K weight (rows = n_heads * head_dim)."""
    rows = weight.rows
    half = rows.shape[0] // n_heads // 2
    restored = rows.reshape(n_heads, half, 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)
    return GGUFWeight(weight.qtype, restored, weight.shape)


def _fuse(parts: dict[int, GGUFWeight]) -> GGUFWeight:
    ordered = [parts[i] for i in sorted(parts)]
    kinds = {p.qtype for p in ordered}
    if len(kinds) > 1:  # mixed types (e.g. a Q6_K value next to Q4_K query/key): fuse as floats
        values = torch.cat([p.to_float() for p in ordered], dim=0)
        return GGUFWeight("F32", values.numpy(), tuple(values.shape))
    rows = np.concatenate([p.rows for p in ordered], axis=0)
    shape = (sum(p.shape[0] for p in ordered), *ordered[0].shape[1:])
    return GGUFWeight(ordered[0].qtype, rows, shape)


def gguf_weights(gguf: GGUFFile, config: ModelConfig) -> dict[str, GGUFWeight]:
    """Every tensor of the file under our parameter name (q/k/v and gate/up fused, Q/K unpermuted)."""
    weights: dict[str, GGUFWeight] = {}
    parts: dict[str, dict[int, GGUFWeight]] = {}
    unknown = []
    for name in gguf.tensors:
        match = NAME.match(name)
        base = match["base"] if match else None
        if base not in (TOP_LEVEL if match and match["i"] is None else BLOCK):
            unknown.append(name)
            continue
        weight = _weight(gguf, name)
        if match["i"] is None:
            weights[f"{TOP_LEVEL[base]}.{match['p']}"] = weight
            continue
        ours, part = BLOCK[base]
        if config.family == "gpt2" and base == "ffn_up":
            part = None
        if config.family == "llama" and base in ("attn_q", "attn_k"):
            weight = unpermute_rows(weight, config.n_heads if base == "attn_q" else config.n_kv_heads)
        key = B.format(i=match["i"]) + f"{ours}.{match['p']}"
        if part is None:
            weights[key] = weight
        else:
            parts.setdefault(key, {})[part] = weight
    if unknown:
        raise GGUFError(f"{gguf.path}: tensors with no LLMOS equivalent for architecture "
                        f"{gguf.architecture!r}: {sorted(unknown)[:8]}")
    for key, pieces in parts.items():
        weights[key] = _fuse(pieces)
    return weights
