"""Layer 3: load a GGUF file into an LLMOS model, its tokenizer, and its generation defaults.

`quantize` says what becomes of quantized tensors:

- "auto" (default): as stored, like llama.cpp. Q4_0 / Q4_1 / Q4_K linears go
  straight into `Int4Linear` and Q8_0 / Q5_0 ones into `GroupInt8Linear` (their
  codes unchanged); Q5_K / Q6_K ones are requantized to that int8 (not exact,
  see `gguf_blocks`); float types stay float. A tied embedding that is
  quantized is dequantized for the lookup, and its blocks also serve as the LM
  head.
- "none": every tensor dequantized to float32, as transformers loads GGUF files
  (what `llmos convert` and fine-tuning start from).
- "int8" / "int4": every linear in that kernel (per-channel int8, or group-32
  int4 with Q4_0 / Q4_1 / Q4_K blocks kept as they are), quantized from the
  float values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from llmos.checkpoint.gguf_config import config_from_gguf, generation_defaults_from_gguf
from llmos.checkpoint.gguf_file import GGUFError, open_gguf
from llmos.checkpoint.gguf_weights import GGUFWeight, gguf_weights
from llmos.checkpoint.pretrained import (
    HEADS,
    empty_model,
    materialize_buffers,
    resolve_dtype,
    tied_names,
)
from llmos.kernels import quantize
from llmos.kernels.quantized import quantizable
from llmos.model.heads import CausalLM, PreTrainedModel

QUANTIZE_CHOICES = ("auto", "none", "int8", "int4")
TENSOR_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q5_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K")
KEPT_KINDS = {"auto": ("int4", "int8"), "int4": ("int4",)}  # kernels that take the file's blocks, per mode


def _check_types(path: Path, weights: dict[str, GGUFWeight]) -> None:
    bad = sorted({f"{name}: {t}" for name, w in weights.items() for t in w.qtypes if t not in TENSOR_TYPES})
    if bad:
        raise GGUFError(f"{path}: tensor type(s) not supported: {bad[:4]}; supported types are {list(TENSOR_TYPES)}")


def load_gguf(path: str | Path, head: type[PreTrainedModel] | str | None = None, quantize_mode: str = "auto",
              dtype: Any = None) -> PreTrainedModel:
    """A model with the file's weights; see the module docstring for `quantize_mode`."""
    if quantize_mode not in QUANTIZE_CHOICES:
        raise GGUFError(f"quantize={quantize_mode!r} is not valid; expected one of {list(QUANTIZE_CHOICES)}")
    gguf = open_gguf(path)
    config = config_from_gguf(gguf)
    head = HEADS[head] if isinstance(head, str) else (head or CausalLM)
    if head is not CausalLM:
        raise GGUFError(f"{gguf.path} holds a causal language model; load it with AutoModelForCausalLM")
    weights = gguf_weights(gguf, config)
    _check_types(gguf.path, weights)
    model = empty_model(head, config)
    expected = model.state_dict()
    tied = tied_names(model)
    missing = sorted(k for k in expected if k not in weights and k not in tied)
    unexpected = sorted(k for k in weights if k not in expected)
    if missing or unexpected:
        raise GGUFError(f"{gguf.path} does not match a {config.family} model of its own metadata: missing "
                        f"tensors {missing[:6]}, unexpected {unexpected[:6]}")
    target = resolve_dtype(dtype)
    kept = KEPT_KINDS.get(quantize_mode, ())
    in_kernels = {
        key.removesuffix(".weight") for key, w in weights.items()
        if key.endswith(".weight") and w.kernel_kind in kept and quantizable(*w.shape, "int4")
        and isinstance(model.get_submodule(key.removesuffix(".weight")), nn.Linear)
    }
    state = {key: w.to_float().to(target) for key, w in weights.items()
             if key.rpartition(".")[0] not in in_kernels}
    model.load_state_dict(state, strict=False, assign=True)  # before the swap: it would repack every kernel
    for module_name in in_kernels:
        bias = weights.get(f"{module_name}.bias")
        weight = weights[f"{module_name}.weight"]
        model.set_submodule(module_name, weight.kernel_module(bias.to_float() if bias is not None else None))
    embedding = weights["transformer.embed.tokens.weight"]
    if config.tie_embeddings and embedding.kernel_kind in kept and quantizable(config.vocab_size, config.d_model,
                                                                               "int4"):
        model.lm_head = embedding.kernel_module()  # the head reads the blocks; the lookup has floats
    else:
        model.tie_weights()
    materialize_buffers(model, str(gguf.path))
    if quantize_mode in ("int8", "int4"):
        quantize(model, quantize_mode)
    model.generation_config = generation_defaults_from_gguf(gguf)
    return model.eval()


def load_gguf_tokenizer(path: str | Path):
    """The file's tokenizer (ids, special tokens, add-BOS behaviour, chat template)."""
    from llmos.tokenizer.from_gguf import tokenizer_from_gguf

    gguf = open_gguf(path)
    return tokenizer_from_gguf(gguf.metadata)
