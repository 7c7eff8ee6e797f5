"""Layer 2b (kernels): attention of a few queries over a KV cache (a decode step's), in C++.

`cached_attention` takes `llmos.model.attention.sdpa`'s arguments and runs
`torch.ops.llmos.cached_attention` (csrc/cached_attention.cpp, built with int_dot by
`llmos.kernels.build`; its header says how it works) where that applies: float32 on the CPU, at
most `MAX_QUERIES` queries a row, a boolean mask, no dropout and no score cap, a head size that is
a multiple of 16 up to 256, no gradient. Anything else goes to `sdpa` itself.
`benchmarks/cached_attention.py` times both on SmolLM2's shapes (9 query heads over 3 key/value heads
of 64, one query, half the columns open): SDPA 33 us a layer over 160 cached columns and 254-405 us
over 2,048, this op 10-11 us and 59-122 us (3.1-4.3x, one run on a Xeon, 1 and 2 threads). It
reads only the columns the mask lets through, so a cache sized for a long reply costs nothing
until it fills, and a paged cache's pools in place (through its slot table, where SDPA needs them
gathered first).

`use_cached_attention(model)` (which `use_kernels` runs) gives it to every attention layer of a
model: the function a layer attends with when it reads a cache. The op's `isa` follows
LLMOS_INT_DOT_ISA, as int_dot's does.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from llmos.kernels import build, int_dot
from llmos.model.attention import Attention, sdpa

MAX_QUERIES = 4  # a row's queries (a decode step has 1); longer passes are SDPA's ground


def available() -> bool:
    """Whether the op is loaded (building the extension once if needed); see `build.load`."""
    loaded = build.load()
    if loaded:
        _register_fake()
    return loaded


def cached_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                     is_causal: bool = False, dropout: float = 0.0, scale: float | None = None,
                     softcap: float | None = None, slots: torch.Tensor | None = None, isa: int = -1) -> torch.Tensor:
    """softmax(q k^T * scale) v as `sdpa` computes it (`slots`: k and v are a paged cache's pools, read
    through them), through the C++ op where it applies (see the top)."""
    applies = (mask is not None and mask.dtype == torch.bool and mask.dim() == 4 and mask.shape[1] == 1
               and not is_causal and not dropout and softcap is None
               and q.dtype == k.dtype == v.dtype == torch.float32 and q.device.type == "cpu"
               and q.shape[2] <= MAX_QUERIES and q.shape[-1] % 16 == 0 and q.shape[-1] <= 256
               and (slots is None or slots.dtype == torch.long)
               and not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)))
    if not applies:
        return sdpa(q, k, v, mask, is_causal, dropout, scale, softcap, slots)
    return torch.ops.llmos.cached_attention(q, k, v, mask, q.shape[-1] ** -0.5 if scale is None else scale, isa,
                                            None if slots is None else slots.contiguous())


def use_cached_attention(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Every attention layer of `model` attends over its cache with `cached_attention` (or, enabled=False,
    off the CPU or without the extension, with SDPA). In place; returns `model`."""
    on_cpu = any(p.device.type == "cpu" for p in model.parameters())
    wanted = enabled and on_cpu and available()
    attend = functools.partial(cached_attention, isa=int_dot.isa_index()) if wanted else sdpa
    for module in model.modules():
        if isinstance(module, Attention):
            module.cached_attention = attend
    return model


@functools.cache
def _register_fake() -> None:
    """The op's shape for tracing (torch.compile, meta tensors): (B, H, T, D) laid out as (B, T, H, D)."""

    @torch.library.register_fake("llmos::cached_attention")
    def _fake(q, k, v, mask, scale, isa=-1, slots=None):
        length = k.shape[2] if slots is None else slots.shape[1]
        torch._check(length == mask.shape[3])  # one length: one symbol in a compiled graph
        if slots is None:
            torch._check(v.shape[2] == length)
        B, H, T, D = q.shape
        return q.new_empty(B, T, H, D).transpose(1, 2)
