"""Layer 2b: CPU fast paths, applied to a built model by swapping modules (never imported by the model).

- `use_kernels(model)`: fp32 linears through oneDNN (`OneDNNLinear`), a causal
  LM's head with a chunked fused cross-entropy (`FusedLossHead`); which kernel
  serves few-row inputs is measured once per machine (`choice`).
- `quantize(model, "int8" | "int4")`: weight-only quantized linears (`Int8Linear`,
  `Int4Linear`; GGUF's Q8_0 blocks run as `GroupInt8Linear`). Few-row inputs go to
  our integer dot-product kernels (`int_dot`, a C++ extension built once by
  `python -m llmos.kernels` and cached) or to torch's own int8 / int4 kernels,
  whichever `choice` measured faster on this machine. `adapt_activations`
  (which `use_kernels` applies) gives int_dot's 16-bit activation codes only to the blocks
  that need them, in every quantized linear but the output head.
- `use_cached_attention(model)` (which `use_kernels` applies): a decode step's attention over the
  KV cache through a C++ kernel (`cached_attention`, built with int_dot) instead of SDPA.

LLMOS_KERNELS=0 switches the fp32 fast paths off; LLMOS_INT_KERNEL=int_dot|torch
forces the quantized kernel, LLMOS_INT_DOT=0 leaves the extension out.
"""

from llmos.kernels.cached_attention import cached_attention, use_cached_attention
from llmos.kernels.head_loss import FusedLossHead, head_cross_entropy
from llmos.kernels.onednn import ONEDNN, OneDNNLinear, inner_product, onednn_linear
from llmos.kernels.quantized import (
    METHODS,
    GroupInt8Linear,
    Int4Linear,
    Int8Linear,
    QuantizedLinear,
)
from llmos.kernels.swap import adapt_activations, kernels_enabled, quantize, use_kernels

__all__ = [
    "METHODS",
    "ONEDNN",
    "FusedLossHead",
    "GroupInt8Linear",
    "Int4Linear",
    "Int8Linear",
    "OneDNNLinear",
    "QuantizedLinear",
    "adapt_activations",
    "cached_attention",
    "head_cross_entropy",
    "inner_product",
    "kernels_enabled",
    "onednn_linear",
    "quantize",
    "use_cached_attention",
    "use_kernels",
]
