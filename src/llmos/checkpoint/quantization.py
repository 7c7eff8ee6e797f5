"""Layer 3: the on-disk form of a weight-only quantized checkpoint: its config entry and module swap.

A quantized checkpoint directory is an ordinary one (config.json,
model.safetensors, tokenizer files, generation_config.json) with two
differences:

- config.json carries a "quantization" entry naming what was quantized:

      "quantization": {"method": "int4", "group_size": 32,
                       "modules": ["lm_head", "transformer.blocks.0.attn.qkv", ...]}

  `modules` are the qualified names of the quantized linears; a linear not
  listed is float (a shape the kernel cannot take, e.g. int4 with in % 32 != 0).
  A model loaded from a GGUF file as stored can mix kernels (SmolLM2: Q4_1
  layers in int4, its Q8_0 head as "int8-group32"); then "method" is "mixed"
  and `modules` maps each name to its method.
  `group_size` is the number of inputs sharing a scale: 32 for int4, null for
  int8 (one scale per output row).
- under each listed name the safetensors hold that module's `state_dict()`
  instead of `weight`: the layout `llmos.kernels.quantized` documents (int8:
  `qweight` int8 (out, in), `scales` (out,); int4: `qweight` uint8
  (out, in/2) nibble-packed, `scales` and `zeros` (out, in/32);
  int8-group32: `qweight` int8 (out, in), `scales` (out, in/32)), plus a
  float32 `bias` when the layer has one. Scales and zeros are bf16 when LLMOS
  quantized the weights, float32 when they come from a GGUF file's f16 values
  (kept exactly); both load. The kernels' own packed copies are never written;
  they are rebuilt at load time.

A quantized LM head whose float version was tied to the embedding is stored
as its own codes: the embedding lookup keeps the float table, as in memory.

Loading (`load_pretrained`) builds the model on the meta device, puts empty
quantized modules where the entry says (`swap_in_empty`), and assigns the
tensors read from the file; `Int4Linear` repacks its kernel copy in its
load_state_dict post hook, so the reloaded model computes exactly what the
in-memory quantized one did.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llmos.checkpoint.safetensors_io import CheckpointError
from llmos.kernels.quantized import (
    GROUP_SIZE,
    KERNEL_DTYPE,
    GroupInt8Linear,
    Int4Linear,
    Int8Linear,
    QuantizedLinear,
    quantizable,
)

QUANTIZATION_KEY = "quantization"
STORED_METHODS = ("int8", "int4", "int8-group32")


def quantization_entry(model: nn.Module) -> dict[str, Any] | None:
    """The config.json "quantization" entry for `model`, or None when no linear is quantized."""
    found = {name: module.method for name, module in model.named_modules() if isinstance(module, QuantizedLinear)}
    if not found:
        return None
    methods = sorted(set(found.values()))
    if len(methods) > 1:
        return {"method": "mixed", "group_size": GROUP_SIZE, "modules": dict(sorted(found.items()))}
    method = methods[0]
    return {"method": method, "group_size": None if method == "int8" else GROUP_SIZE, "modules": sorted(found)}


def stored_method(raw_config: dict[str, Any]) -> str | None:
    """The method a checkpoint's config.json says its linears are stored in ("mixed" when several),
    or None for a float checkpoint."""
    entry = raw_config.get(QUANTIZATION_KEY)
    if not entry:
        return None
    return str(entry.get("method")) if isinstance(entry, dict) else str(entry)


def module_of_key(key: str, modules: set[str]) -> str | None:
    """The quantized module a state-dict key belongs to, if any."""
    owner = key.rpartition(".")[0]
    return owner if owner in modules else None


def _checked_entry(entry: Any, where: str) -> dict[str, str]:
    """{module name: method} of a config.json entry, or one error naming what is wrong with it."""
    modules = entry.get("modules") if isinstance(entry, dict) else None
    if isinstance(modules, list) and entry.get("method") in STORED_METHODS:
        methods = {str(name): entry["method"] for name in modules}
    elif isinstance(modules, dict) and entry.get("method") == "mixed":
        methods = {str(name): str(method) for name, method in modules.items()}
    else:
        methods = {"?": "?"}
    if any(m not in STORED_METHODS for m in methods.values()):
        raise CheckpointError(f"{where}: the {QUANTIZATION_KEY!r} entry {entry!r} is not valid; expected "
                              f'{{"method": one of {list(STORED_METHODS)}, "modules": [names of quantized '
                              f'linears]}} or {{"method": "mixed", "modules": {{name: method}}}}')
    group = entry.get("group_size")
    if group not in (None, GROUP_SIZE):
        raise CheckpointError(f"{where}: group_size {group} is not supported; LLMOS's grouped kernels use "
                              f"groups of {GROUP_SIZE}")
    return methods


def quantized_module_names(entry: Any, where: str) -> set[str]:
    """The qualified names of the linears a config.json "quantization" entry lists (validated)."""
    return set(_checked_entry(entry, where))


def _empty(method: str, layer: nn.Linear) -> QuantizedLinear:
    """A quantized module of `layer`'s shape whose tensors are on the meta device (filled by assignment,
    which keeps the stored dtypes: bf16 or float32 scales)."""
    out_features, in_features = layer.out_features, layer.in_features
    meta = {"device": "meta"}
    bias = layer.bias.detach().to("meta") if layer.bias is not None else None
    groups = in_features // GROUP_SIZE
    if method == "int8":
        return Int8Linear(torch.empty(out_features, in_features, dtype=torch.int8, **meta),
                          torch.empty(out_features, dtype=KERNEL_DTYPE, **meta), bias)
    if method == "int8-group32":
        return GroupInt8Linear(torch.empty(out_features, in_features, dtype=torch.int8, **meta),
                               torch.empty(out_features, groups, dtype=KERNEL_DTYPE, **meta), bias)
    return Int4Linear(torch.empty(out_features, in_features // 2, dtype=torch.uint8, **meta),
                      torch.empty(out_features, groups, dtype=KERNEL_DTYPE, **meta),
                      torch.empty(out_features, groups, dtype=KERNEL_DTYPE, **meta), bias)


def swap_in_empty(model: nn.Module, entry: Any, where: str) -> None:
    """Replace the linears `entry` lists by empty quantized modules (in place).

    `where` (the checkpoint path) prefixes any error. Every listed name must be an
    nn.Linear of the freshly built model, of a shape the method's kernel takes."""
    for name, method in _checked_entry(entry, where).items():
        try:
            layer = model.get_submodule(name)
        except AttributeError:
            layer = None
        if layer is None and not name.startswith("transformer."):
            continue  # a head this model does not have (load_pretrained warns about its keys)
        if not isinstance(layer, nn.Linear):
            raise CheckpointError(f"{where}: config.json lists {name!r} as a quantized linear, but the model "
                                  "has no linear layer of that name")
        if not quantizable(layer.out_features, layer.in_features, "int8" if method == "int8" else "int4"):
            raise CheckpointError(f"{where}: {name!r} ({layer.out_features} x {layer.in_features}) does not fit "
                                  f"the {method} kernel, yet config.json lists it as {method}")
        model.set_submodule(name, _empty(method, layer))
