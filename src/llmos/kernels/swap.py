"""Layer 2b (kernels): put the fast paths into a built model by swapping its modules.

The model is written with plain `nn.Linear` layers (see llmos.model); after it
is built or loaded, `use_kernels(model)` replaces each CPU fp32 linear with a
`OneDNNLinear` (and a causal LM's head with a `FusedLossHead`), sharing the
same parameter objects: tied weights stay tied, state_dict keys and optimizer
parameters are unchanged. `quantize(model, "int8" | "int4")` replaces them with
weight-only quantized linears instead. `use_kernels` also runs
`adapt_activations`: every quantized linear but the output head then quantizes
its input adaptively, 16-bit codes only in the blocks that need them (see
`llmos.kernels.int_dot`); the head keeps 16 bits everywhere, its logits decide
greedy answers. And it gives every attention layer `cached_attention`, a C++
kernel for the few queries of a decode step over a KV cache (see
`llmos.kernels.cached_attention`). This is the way torchao's `quantize_`
works; the model code never imports this package.

`LLMOS_KERNELS=0` (or `use_kernels(model, enabled=False)`) leaves every module
as it is: the plain PyTorch path, for comparison or debugging.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from torch import nn

from llmos.errors import LLMOSError
from llmos.kernels.cached_attention import use_cached_attention
from llmos.kernels.choice import few_rows_onednn
from llmos.kernels.head_loss import FusedLossHead
from llmos.kernels.onednn import ONEDNN, OneDNNLinear
from llmos.kernels.quantized import METHODS, QuantizedLinear, quantize_linear

HEAD_NAMES = ("lm_head",)  # a causal LM's output head (qualified name): fused loss in training


def kernels_enabled(enabled: bool | None = None) -> bool:
    """An explicit argument wins; otherwise LLMOS_KERNELS=0 turns the fast paths off."""
    if enabled is not None:
        return enabled
    return os.environ.get("LLMOS_KERNELS", "1") != "0"


def linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """(qualified name, layer) for every plain nn.Linear in `model`."""
    return [(name, module) for name, module in model.named_modules() if type(module) is nn.Linear]


def replace_linears(model: nn.Module, make: Callable[[str, nn.Linear], nn.Module]) -> nn.Module:
    """Put `make(name, layer)` in the place of each plain nn.Linear (in place; returns `model`)."""
    for name, layer in linears(model):
        model.set_submodule(name, make(name, layer))
    return model


def use_kernels(model: nn.Module, enabled: bool | None = None) -> nn.Module:
    """Swap `model`'s CPU fp32 linears for the oneDNN ones, give its quantized ones adaptive
    activation codes and its attention layers the C++ attention over a cache (in place; returns `model`)."""
    if not kernels_enabled(enabled):
        return model
    adapt_activations(model)
    use_cached_attention(model)
    if not ONEDNN:
        return model
    on_cpu = any(p.device.type == "cpu" for p in model.parameters())
    if not on_cpu:
        return model
    few_rows = few_rows_onednn()

    def make(name: str, layer: nn.Linear) -> nn.Module:
        cls = FusedLossHead if name in HEAD_NAMES else OneDNNLinear
        return cls.from_linear(layer, few_rows_onednn=few_rows)

    return replace_linears(model, make)


def quantize(model: nn.Module, method: str, skip: Callable[[str], bool] | None = None) -> nn.Module:
    """Replace `model`'s linears by `method` ("int8" or "int4") weight-only quantized ones, in place.

    `skip(qualified_name)` keeps chosen layers in float. A layer whose weight is tied
    to the embedding table (a tied LM head) is quantized as a copy: the embedding
    lookup keeps the float table."""
    if method not in METHODS:
        raise LLMOSError(f"quantization {method!r} is not known; expected one of {list(METHODS)}")
    return replace_linears(model, lambda name, layer: layer if skip is not None and skip(name)
                           else quantize_linear(layer, method))


def adapt_activations(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Adaptive activation codes (see the top) for every quantized linear but the output head, or
    (enabled=False) 16 bits everywhere. In place; returns `model`."""
    for name, module in model.named_modules():
        if isinstance(module, QuantizedLinear):
            module.adaptive_activations = enabled and name not in HEAD_NAMES
    return model
