"""Layer 2b: CPU fast paths, applied to a built model by swapping modules (never imported by the model).

- `use_kernels(model)`: fp32 linears through oneDNN (`OneDNNLinear`), a causal
  LM's head with a chunked fused cross-entropy (`FusedLossHead`); which kernel
  serves few-row inputs is measured once per machine (`choice`).
- `quantize(model, "int8" | "int4")`: weight-only quantized linears on torch's
  own int8 / int4 CPU kernels (`Int8Linear`, `Int4Linear`; GGUF's Q8_0 blocks
  run as `GroupInt8Linear`).

LLMOS_KERNELS=0 switches the fast paths off.
"""

from llmos.kernels.head_loss import FusedLossHead, head_cross_entropy
from llmos.kernels.onednn import ONEDNN, OneDNNLinear, inner_product, onednn_linear
from llmos.kernels.quantized import (
    METHODS,
    GroupInt8Linear,
    Int4Linear,
    Int8Linear,
    QuantizedLinear,
)
from llmos.kernels.swap import kernels_enabled, quantize, use_kernels

__all__ = [
    "METHODS",
    "ONEDNN",
    "FusedLossHead",
    "GroupInt8Linear",
    "Int4Linear",
    "Int8Linear",
    "OneDNNLinear",
    "QuantizedLinear",
    "head_cross_entropy",
    "inner_product",
    "kernels_enabled",
    "onednn_linear",
    "quantize",
    "use_kernels",
]
