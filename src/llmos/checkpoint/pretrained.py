"""Layer 3: save a model as a checkpoint directory and load one back (ours or Hugging Face's).

A checkpoint directory holds config.json (`ModelConfig.to_dict()` plus
"model_type": "llmos" and "head", the head class saved), model.safetensors
(or shards + index), generation_config.json and, when given, the tokenizer's
files. Saving is atomic: everything is written to a temporary directory beside
the target, fsynced, then renamed into place, so a failure leaves any previous
checkpoint untouched (`llmos.atomic_files`). Loading builds the model under `torch.device("meta")`
and assigns tensors read from the memory-mapped safetensors files, so
the weights are held in memory about once.

A model with weight-only quantized linears (`llmos.kernels.quantize`, or a
GGUF file's Q4 blocks) saves and loads the same way; config.json then has a
"quantization" entry (see `checkpoint.quantization` for the layout).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch import nn

from llmos.atomic_files import atomic_directory
from llmos.checkpoint.hf_config import HF_FAMILIES, config_from_hf
from llmos.checkpoint.hf_weights import hf_to_ours
from llmos.checkpoint.quantization import (
    QUANTIZATION_KEY,
    module_of_key,
    quantization_entry,
    quantized_module_names,
    swap_in_empty,
)
from llmos.checkpoint.safetensors_io import (
    DEFAULT_SHARD_BYTES,
    CheckpointError,
    LazyStateDict,
    write_state_dict,
)
from llmos.config import ModelConfig
from llmos.model.heads import (
    CausalLM,
    MaskedLM,
    PreTrainedModel,
    PreTrainingModel,
    SequenceClassifier,
)

logger = logging.getLogger("llmos.checkpoint")

CONFIG_NAME = "config.json"
GENERATION_CONFIG_NAME = "generation_config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "vocab.txt", "vocab.json", "merges.txt")
HEADS: dict[str, type[PreTrainedModel]] = {
    cls.__name__: cls for cls in (CausalLM, MaskedLM, PreTrainingModel, SequenceClassifier)
}
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
_SAFETENSORS_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
                       "F64": torch.float64}


# ---- saving ------------------------------------------------------------------


def unique_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """model.state_dict() with tied tensors kept once (under their first name)."""
    seen: set[tuple[int, tuple[int, ...], tuple[int, ...]]] = set()
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        key = (tensor.untyped_storage().data_ptr() + tensor.storage_offset() * tensor.element_size(),
               tuple(tensor.shape), tuple(tensor.stride()))
        if key in seen:
            continue
        seen.add(key)
        state[name] = tensor
    return state


def tied_names(model: nn.Module) -> set[str]:
    """Names of parameters that are the same object as an earlier-named one (tied weights)."""
    first: dict[int, str] = {}
    tied: set[str] = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first:
            tied.add(name)
        else:
            first[id(param)] = name
    return tied


def generation_defaults(config: ModelConfig, generation_config: Any = None) -> dict[str, Any]:
    if generation_config is None:
        return {"bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id,
                "pad_token_id": config.pad_token_id}
    if isinstance(generation_config, dict):
        return dict(generation_config)
    if hasattr(generation_config, "to_diff_dict"):  # ours or transformers': what was set, not every default
        return dict(generation_config.to_diff_dict())
    if hasattr(generation_config, "to_dict"):
        return dict(generation_config.to_dict())
    raise CheckpointError(
        f"generation_config of type {type(generation_config).__name__} is not usable; "
        "expected a dict or an object with to_dict()"
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w") as f:
        f.write(json.dumps(data, indent=2, default=str) + "\n")


def save_pretrained(
    model: PreTrainedModel,
    path: str | Path,
    tokenizer: Any = None,
    generation_config: Any = None,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> Path:
    """Write `model` (and optionally its tokenizer and generation config) as a checkpoint directory."""
    head = type(model).__name__
    if head not in HEADS:
        raise CheckpointError(f"cannot save a {head}; expected one of {sorted(HEADS)}")
    config = model.config
    quantization = quantization_entry(model)
    with atomic_directory(path) as tmp:
        extra = {QUANTIZATION_KEY: quantization} if quantization else {}
        _write_json(tmp / CONFIG_NAME, {**config.to_dict(), "head": head, **extra})
        write_state_dict(unique_state_dict(model), tmp, max_shard_bytes, metadata={"head": head})
        _write_json(tmp / GENERATION_CONFIG_NAME, generation_defaults(config, generation_config))
        if tokenizer is not None:
            if not hasattr(tokenizer, "save_pretrained"):
                raise CheckpointError(
                    f"tokenizer of type {type(tokenizer).__name__} has no save_pretrained(dir)"
                )
            tokenizer.save_pretrained(str(tmp))
    return Path(path)


# ---- loading -----------------------------------------------------------------


class LoadingInfo(TypedDict):
    """What a load found, as transformers' `from_pretrained(..., output_loading_info=True)` reports it
    (our parameter names): `missing_keys` were not in the checkpoint and are freshly initialised (an
    untrained head), `unexpected_keys` were in it and are ignored. A trunk key either way, or a shape
    mismatch, is an error rather than a report, so `mismatched_keys` and `error_msgs` stay empty."""

    missing_keys: list[str]
    unexpected_keys: list[str]
    mismatched_keys: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
    error_msgs: list[str]


def loading_info(missing: list[str] | None = None, unexpected: list[str] | None = None) -> LoadingInfo:
    return {"missing_keys": list(missing or []), "unexpected_keys": list(unexpected or []),
            "mismatched_keys": [], "error_msgs": []}


def read_config(path: str | Path) -> tuple[ModelConfig, str | None, dict[str, Any]]:
    """(ModelConfig, saved head name or None, raw config.json dict) for a checkpoint directory."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is not a checkpoint directory (expected a directory with {CONFIG_NAME} and model.safetensors)"
        )
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"{path} is not a checkpoint directory: it has no {CONFIG_NAME}")
    try:
        raw = json.loads(config_path.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{config_path} must hold a JSON object, found {type(raw).__name__}")
    kind = raw.get("model_type")
    if kind == "llmos":
        data = {k: v for k, v in raw.items() if k not in ("model_type", "head", QUANTIZATION_KEY)}
        return ModelConfig.from_dict(data), raw.get("head"), raw
    config = config_from_hf(raw)  # raises for unknown model_type
    arch = (raw.get("architectures") or [""])[0]
    head = ("SequenceClassifier" if "SequenceClassification" in arch else
            "PreTrainingModel" if arch.endswith("ForPreTraining") else
            "MaskedLM" if arch.endswith("ForMaskedLM") else
            "CausalLM" if arch.endswith(("LMHeadModel", "ForCausalLM")) else None)
    return config, head, raw


def resolve_dtype(dtype: Any, lazy: LazyStateDict | None = None,
                  skip: Callable[[str], bool] | None = None) -> torch.dtype:
    """The float dtype to load into; "auto" is the first float tensor's in `lazy` (keys `skip` rejects
    aside: a quantized layer's bf16 scales say nothing about the model's dtype)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if lazy is not None:
            for key in lazy.keys():
                if skip is not None and skip(key):
                    continue
                found = _SAFETENSORS_DTYPES.get(lazy.dtype(key))
                if found is not None:
                    return found
        return torch.float32
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.removeprefix("torch.")]
    raise CheckpointError(
        f"dtype={dtype!r} is not supported; expected a torch dtype or one of {sorted(DTYPES) + ['auto']}"
    )


def empty_model(head: type[PreTrainedModel], config: ModelConfig) -> PreTrainedModel:
    """`head(config)` built under `torch.device("meta")`: no memory, no init cost. Fill it with
    `load_state_dict(..., assign=True)`, then `materialize_buffers`. The device context is
    thread-local, so modules other threads build meanwhile are untouched (torch is not patched)."""
    with torch.device("meta"):
        return head(config)


def materialize_buffers(model: nn.Module, label: str) -> None:
    """After the weights are assigned: recompute the derived tables (RoPE, sinusoids) the meta device
    left empty, and refuse a model that still has a meta tensor (a weight nobody loaded)."""
    for module in model.modules():
        if any(b.is_meta for b in module.buffers(recurse=False)) and hasattr(module, "init_buffers"):
            module.init_buffers()
    empty = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if empty:
        raise CheckpointError(f"{label}: {empty[:6]} were not loaded (still on the meta device)")


def check_tokenizer_fits(path: Path, config: ModelConfig) -> None:
    tokenizer_file = path / "tokenizer.json"
    if not tokenizer_file.is_file():
        return
    from tokenizers import Tokenizer

    try:
        size = Tokenizer.from_file(str(tokenizer_file)).get_vocab_size(with_added_tokens=True)
    except Exception as exc:
        raise CheckpointError(f"{tokenizer_file} is not a readable tokenizer: {exc}") from None
    if size > config.vocab_size:
        raise CheckpointError(
            f"the tokenizer in {tokenizer_file} has {size} tokens but the model's embedding has "
            f"vocab_size={config.vocab_size}; ids >= {config.vocab_size} would have no embedding "
            "(resize the model or use the matching tokenizer)"
        )


def _fresh_init(shape: torch.Size, name: str, dtype: torch.dtype, std: float) -> torch.Tensor:
    tensor = torch.empty(shape, dtype=dtype)
    if len(shape) >= 2:
        return tensor.normal_(0.0, std)
    is_norm_weight = name.endswith("weight")
    return tensor.fill_(1.0 if is_norm_weight else 0.0)


def _is_head_key(name: str) -> bool:
    return not name.startswith("transformer.")


def load_pretrained(
    path: str | Path,
    head: type[PreTrainedModel] | str | None = None,
    dtype: Any = None,
    output_loading_info: bool = False,
    **config_overrides: Any,
) -> PreTrainedModel | tuple[PreTrainedModel, LoadingInfo]:
    """Load a checkpoint directory (LLMOS or Hugging Face gpt2/llama/qwen2/mistral/bert) into `head`.

    Head tensors the checkpoint lacks are freshly initialised, and head tensors it has
    but `head` does not use are ignored, each with a warning naming the keys; with
    `output_loading_info=True` the result is `(model, LoadingInfo)`, which lists them for
    code to act on (as transformers does). Trunk keys must match exactly. A quantized
    checkpoint loads into its quantized modules, their tensors as stored (`dtype` applies
    to the float tensors).
    """
    path = Path(path)
    config, saved_head, raw = read_config(path)
    if config_overrides:
        config = config.replace(**config_overrides)
        config.validate()
    if head is None:
        head = saved_head or ("CausalLM" if config.causal else "MaskedLM")
    if isinstance(head, str):
        if head not in HEADS:
            raise CheckpointError(f"head {head!r} is not known; expected one of {sorted(HEADS)}")
        head = HEADS[head]
    check_tokenizer_fits(path, config)
    quantization = raw.get(QUANTIZATION_KEY)
    quantized = quantized_module_names(quantization, str(path)) if quantization is not None else set()
    with LazyStateDict(path) as lazy:
        target_dtype = resolve_dtype(dtype, lazy, skip=lambda key: module_of_key(key, quantized) is not None)
        if config.family in HF_FAMILIES and raw.get("model_type") != "llmos":
            source, unmapped = hf_to_ours(lazy.keys(), config.family, lazy.__getitem__)
            if unmapped:
                raise CheckpointError(
                    f"{path}: unexpected keys with no LLMOS equivalent: {sorted(unmapped)}"
                )
            names, shape_of, fetch = list(source), (lambda k: tuple(source[k].shape)), source.pop
        else:
            names, shape_of, fetch = lazy.keys(), lazy.shape, lazy.__getitem__
        model = empty_model(head, config)
        if quantization is not None:
            swap_in_empty(model, quantization, str(path))
        expected = model.state_dict()
        tied = tied_names(model)
        missing = [k for k in expected if k not in names and k not in tied]
        lost = [k for k in missing if module_of_key(k, quantized) is not None]
        if lost:
            raise CheckpointError(f"{path}: the quantized layers' tensors {lost[:6]} are not in the checkpoint")
        unexpected = [k for k in names if k not in expected]
        bad_missing = [k for k in missing if not _is_head_key(k)]
        bad_unexpected = [k for k in unexpected if not _is_head_key(k)]
        if bad_missing or bad_unexpected:
            raise CheckpointError(
                f"{path} does not match a {head.__name__} of this config: "
                f"missing keys {bad_missing}; unexpected keys {bad_unexpected}"
            )
        mismatched = [
            f"{k}: expected {tuple(expected[k].shape)}, found {shape_of(k)}"
            for k in expected if k in names and tuple(expected[k].shape) != shape_of(k)
        ]
        if mismatched:
            raise CheckpointError(f"{path}: shape mismatch for {'; '.join(mismatched)}")
        if unexpected:
            logger.warning("%s: ignoring checkpoint keys %s not used by %s", path, unexpected, head.__name__)
        if missing:
            logger.warning("%s: keys %s are not in the checkpoint; they are freshly initialised",
                           path, missing)
        state: dict[str, torch.Tensor] = {}
        for key in expected:
            if key in tied:
                continue
            if key in names:
                tensor = fetch(key)
                if module_of_key(key, quantized) is not None:
                    state[key] = tensor  # as stored: codes and bf16 scales
                else:
                    state[key] = tensor.to(target_dtype) if tensor.is_floating_point() else tensor
            else:
                state[key] = _fresh_init(expected[key].shape, key, target_dtype, config.initializer_range)
        model.load_state_dict(state, strict=False, assign=True)
        del state
    model.tie_weights()
    materialize_buffers(model, str(path))
    if output_loading_info:
        return model.eval(), loading_info(missing, unexpected)
    return model.eval()
