"""Layer 3: write an LLMOS model (or checkpoint directory) as a Hugging Face checkpoint.

The result (config.json + model.safetensors, plus tokenizer files and
generation_config.json when the source has them) loads in `transformers` with
the matching class (GPT2LMHeadModel, LlamaForCausalLM, BertForMaskedLM, ...).
A weight-only quantized model (LLMOS's int8/int4 layout, which transformers
does not read) is refused before anything is written: export the float
checkpoint it was quantized from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from llmos.atomic_files import atomic_directory
from llmos.checkpoint.hf_config import HFConversionError, choose_family, config_to_hf
from llmos.checkpoint.hf_weights import ours_to_hf
from llmos.checkpoint.pretrained import (
    GENERATION_CONFIG_NAME,
    TOKENIZER_FILES,
    _write_json,
    generation_defaults,
    load_pretrained,
    read_config,
    unique_state_dict,
)
from llmos.checkpoint.quantization import quantization_entry, stored_method
from llmos.checkpoint.safetensors_io import DEFAULT_SHARD_BYTES, write_state_dict
from llmos.model.heads import PreTrainedModel


def export_hf(
    model_or_dir: PreTrainedModel | str | Path,
    out_dir: str | Path,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    source_dir: str | Path | None = None,
    tokenizer: Any = None,
    generation_config: dict[str, Any] | None = None,
) -> Path:
    """Export to `out_dir` in Hugging Face format; LLMOSError names any field HF cannot express.

    Tokenizer files and generation_config.json are copied from the source directory
    (`model_or_dir` when it is a path, else `source_dir` if given), or written from
    `tokenizer` / `generation_config` when given (a GGUF source has no such files).
    """
    source_dir = Path(source_dir) if source_dir is not None else None
    if isinstance(model_or_dir, PreTrainedModel):
        model = model_or_dir
        entry = quantization_entry(model)
        refuse_quantized(entry and entry["method"], "the model")
    else:
        source_dir = Path(model_or_dir)
        refuse_quantized(stored_method(read_config(source_dir)[2]), str(source_dir))
        model = load_pretrained(source_dir, dtype="auto")
    config = model.config
    head = type(model).__name__
    hf_config = config_to_hf(config, head)  # raises before anything is written
    family = choose_family(config)
    state = unique_state_dict(model)
    tensors = ours_to_hf(state, config, family)
    if family == "bert" and head in ("MaskedLM", "PreTrainingModel") and "cls.predictions.bias" not in tensors:
        tensors["cls.predictions.bias"] = torch.zeros(config.vocab_size, dtype=model.dtype)
    hf_config["dtype"] = str(model.dtype).removeprefix("torch.")
    with atomic_directory(out_dir) as tmp:
        _write_json(tmp / "config.json", hf_config)
        write_state_dict(tensors, tmp, max_shard_bytes)
        generation = generation_config
        if generation is None and source_dir is not None and (source_dir / GENERATION_CONFIG_NAME).is_file():
            generation = json.loads((source_dir / GENERATION_CONFIG_NAME).read_text())
        _write_json(tmp / GENERATION_CONFIG_NAME, generation_defaults(config, generation))
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        elif source_dir is not None:
            for name in TOKENIZER_FILES:
                if (source_dir / name).is_file():
                    shutil.copy2(source_dir / name, tmp / name)
    return Path(out_dir)


def refuse_quantized(method: str | None, what: str) -> None:
    """Raise when `what` is stored quantized (`method` from `stored_method`, None for float)."""
    if method:
        raise HFConversionError(f"{what} is {method}-quantized in LLMOS's own layout, which transformers cannot "
                                "load; export the float checkpoint it was quantized from")
