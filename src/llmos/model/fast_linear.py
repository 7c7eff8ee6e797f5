"""Layer 2: `linear(x, layer)`: an nn.Linear forward that picks a faster kernel for few rows.

Decoding multiplies one to a few dozen rows (tokens x beams x batch) by each
weight matrix, so it is bound by how fast the weights stream from memory.
Measured on this project's 2-core AMD Zen 3 (fp32, quiet machine):

- For exactly one row, NumPy's OpenBLAS gemv streams weights about 2-3x faster
  than torch's MKL (GPT-2's 154 MB LM head: 53 vs 17 GB/s). But the two thread
  pools fight: with torch on 2 threads a GPT-2 step took 112 ms instead of 30.
  Inside `one_row_decoding()` torch runs on one thread (its remaining ops are
  tiny at one row) and one-row linears go to NumPy: a GPT-2 step takes 11 ms,
  close to the memory roofline. Generation enters it for batch-1 decoding only.

- For every other row count, oneDNN's inner product (the kernel library torch
  ships for its CPU backend) beats MKL's sgemm on this AMD CPU by 1.5-2.2x:
  8 rows through all of GPT-2's matrices 19.6 ms vs 29.7 ms; 512-row prefill
  matmuls 450-470 GFLOP/s vs 195-215. So without autograd, on CPU in float32,
  linears go through `torch.ops.mkldnn._linear_pointwise` (dense weights: no
  repacked copy, no extra memory).

With autograd on (training), CPU float32 linears go through
`llmos.model.train_linear.onednn_linear`, whose forward and both backward
matmuls use the same oneDNN kernel (not under torch.compile, which keeps
F.linear). GPUs and half precision use plain `F.linear`.
Parameters remain ordinary nn.Linear modules.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from llmos.model.train_linear import inner_product, onednn_linear

_decoding = threading.local()


@contextmanager
def one_row_decoding(enabled: bool = True) -> Iterator[None]:
    """Route one-row CPU float32 linears through NumPy's BLAS, with torch on one thread.

    Set LLMOS_NUMPY_MATVEC=0 to turn it off (e.g. where NumPy's BLAS is slower)."""
    if not enabled or os.environ.get("LLMOS_NUMPY_MATVEC", "1") == "0":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    _decoding.active = True
    try:
        yield
    finally:
        _decoding.active = False
        torch.set_num_threads(threads)


def _has_onednn_linear() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


ONEDNN = _has_onednn_linear() and os.environ.get("LLMOS_ONEDNN_LINEAR", "1") != "0"


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    weight = layer.weight
    if weight.device.type != "cpu" or weight.dtype != torch.float32 or x.dtype != torch.float32:
        return F.linear(x, weight, layer.bias)
    if torch.is_grad_enabled():
        if ONEDNN and x.numel() > 0 and not torch.compiler.is_compiling() and not torch.is_autocast_enabled("cpu"):
            return onednn_linear(x, weight, layer.bias)
        return F.linear(x, weight, layer.bias)
    rows = x.numel() // x.shape[-1]
    if rows == 1 and getattr(_decoding, "active", False):
        y = torch.from_numpy(weight.detach().numpy() @ x.reshape(-1).numpy())  # (out,)
        if layer.bias is not None:
            y += layer.bias
    elif ONEDNN:
        x2 = x.reshape(rows, x.shape[-1]).contiguous()
        y = inner_product(x2, weight, layer.bias)
    else:
        return F.linear(x, weight, layer.bias)
    return y.view(*x.shape[:-1], weight.shape[0])
