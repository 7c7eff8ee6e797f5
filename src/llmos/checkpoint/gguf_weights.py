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
with the `gguf` package's own dequantizers (every type it knows). `kernel_module()`
puts its blocks into the quantized linear of `gguf_blocks` (int4 for Q4_0, Q4_1,
Q4_K; int8 per group of 32 for Q8_0 and Q5_0, codes kept bit for bit; Q5_K and
Q6_K requantized to that int8, see there). Parts of different types whose kernels
agree (Gemma's Q5_0 queries next to its Q8_0 values) fuse as codes
(`FusedWeight`); parts whose kernels differ fuse as floats.

Per architecture: Qwen3 and Gemma 3 add q/k norms (`attn_q_norm`, `attn_k_norm`),
Gemma 3 the norms after attention and MLP (`post_attention_norm`, `post_ffw_norm`;
its `ffn_norm` is the pre-MLP one) and stores every norm weight as 1 + w (read back
as w, as transformers does); Phi-3 stores qkv and gate/up fused already.
`rope_freqs` and Phi-3's `rope_factors_*` are RoPE settings, read by `gguf_config`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from llmos.checkpoint.gguf_blocks import (
    INT4_TYPES,
    INT8_TYPES,
    REQUANTIZED_TYPES,
    int4_codes,
    int8_codes,
    kernel_kind,
)
from llmos.checkpoint.gguf_config import CONFIG_TENSORS
from llmos.checkpoint.gguf_file import GGUFError, GGUFFile
from llmos.config import ModelConfig

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
    "attn_q_norm": ("attn.q_norm", None),
    "attn_k_norm": ("attn.k_norm", None),
    "post_attention_norm": ("attn_out_norm", None),
    "post_ffw_norm": ("mlp_out_norm", None),
}
FUSED_UP = ("gpt2", "phi3")  # families whose ffn_up is the whole mlp.up (no gate, or gate and up fused)
NAME = re.compile(r"^(?:blk\.(?P<i>\d+)\.)?(?P<base>\w+)\.(?P<p>weight|bias)$")


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

    @property
    def qtypes(self) -> set[str]:
        return {self.qtype}

    @property
    def kernel_kind(self) -> str | None:
        return kernel_kind(self.qtype)

    def codes(self) -> tuple[torch.Tensor, ...]:
        """Int4Linear's (qweight, scales, zeros) or GroupInt8Linear's (qweight, scales) for these rows."""
        if self.qtype in INT4_TYPES:
            return int4_codes(self.qtype, self.rows)
        if self.qtype in INT8_TYPES:
            return int8_codes(self.qtype, self.rows)
        if self.qtype in REQUANTIZED_TYPES:  # not exact: see gguf_blocks
            from llmos.kernels import GroupInt8Linear

            module = GroupInt8Linear.from_float(self.to_float())
            return module.qweight, module.scales
        raise ValueError(f"{self.qtype} rows have no quantized kernel")

    def kernel_module(self, bias: torch.Tensor | None = None):
        """This weight's blocks in the matching quantized linear (int4 or grouped int8, see gguf_blocks)."""
        from llmos.kernels import GroupInt8Linear, Int4Linear

        kind = self.kernel_kind
        if kind is None:
            raise ValueError(f"{sorted(self.qtypes)} rows have no quantized kernel")
        return (Int4Linear if kind == "int4" else GroupInt8Linear)(*self.codes(), bias)


@dataclass
class FusedWeight(GGUFWeight):
    """Row blocks of several weights of different ggml types whose kernels agree (fused q/k/v or gate/up)."""

    parts: tuple[GGUFWeight, ...] = ()

    @property
    def qtypes(self) -> set[str]:
        return {p.qtype for p in self.parts}

    @property
    def kernel_kind(self) -> str | None:
        return self.parts[0].kernel_kind

    def to_float(self) -> torch.Tensor:
        return torch.cat([p.to_float() for p in self.parts], dim=0)

    def codes(self) -> tuple[torch.Tensor, ...]:
        return tuple(torch.cat(fields, dim=0) for fields in zip(*(p.codes() for p in self.parts), strict=True))


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
    shape = (sum(p.shape[0] for p in ordered), *ordered[0].shape[1:])
    if len(kinds) == 1:  # one type: the raw rows, one after the other
        return GGUFWeight(ordered[0].qtype, np.concatenate([p.rows for p in ordered], axis=0), shape)
    if len({p.kernel_kind for p in ordered}) == 1 and ordered[0].kernel_kind is not None:
        return FusedWeight("+".join(p.qtype for p in ordered), np.empty(0), shape, tuple(ordered))
    # kernels that differ (e.g. int4 Q4_K queries beside a Q6_K value): fuse as floats
    values = torch.cat([p.to_float() for p in ordered], dim=0)
    return GGUFWeight("F32", values.numpy(), tuple(values.shape))


def _shift_norm(weight: GGUFWeight) -> GGUFWeight:
    """A Gemma norm weight stored as 1 + w, back to w (Hugging Face's value; the model adds the 1)."""
    return GGUFWeight("F32", weight.to_float().numpy() - np.float32(1.0), weight.shape)


def gguf_weights(gguf: GGUFFile, config: ModelConfig) -> dict[str, GGUFWeight]:
    """Every tensor of the file under our parameter name (q/k/v and gate/up fused, Q/K unpermuted)."""
    weights: dict[str, GGUFWeight] = {}
    parts: dict[str, dict[int, GGUFWeight]] = {}
    unknown = []
    for name in gguf.tensors:
        if name in CONFIG_TENSORS:
            continue
        match = NAME.match(name)
        base = match["base"] if match else None
        if base not in (TOP_LEVEL if match and match["i"] is None else BLOCK):
            unknown.append(name)
            continue
        weight = _weight(gguf, name)
        if config.norm_weight_offset and base.endswith("norm"):
            weight = _shift_norm(weight)
        if match["i"] is None:
            weights[f"{TOP_LEVEL[base]}.{match['p']}"] = weight
            continue
        ours, part = BLOCK[base]
        if config.family in FUSED_UP and base == "ffn_up":
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
