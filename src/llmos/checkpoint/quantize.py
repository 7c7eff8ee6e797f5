"""Layer 3: write a weight-only quantized copy of a checkpoint directory or GGUF file (`llmos quantize`).

`quantize_checkpoint(source, out, "int8" | "int4")` loads the float model,
swaps its linears for `llmos.kernels` quantized ones and saves the result as an
ordinary checkpoint directory (atomic, safetensors, tokenizer files,
generation_config.json) whose config.json says what was quantized; the layout
is documented in `checkpoint.quantization`. `from_pretrained` (and so
`llmos generate|chat|serve`) loads it straight into the quantized modules.

A GGUF source with Q4_0 / Q4_1 blocks keeps those blocks' codes for int4 (no
round trip through float); for int8, or for other block types, the weights are
dequantized and quantized afresh. A checkpoint that is already quantized is
refused: quantizing codes again only adds error, so start from the float one.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmos.checkpoint.convert import CopiedTokenizer
from llmos.checkpoint.pretrained import (
    GENERATION_CONFIG_NAME,
    load_pretrained,
    read_config,
    save_pretrained,
)
from llmos.checkpoint.quantization import quantization_entry, stored_method
from llmos.checkpoint.safetensors_io import DEFAULT_SHARD_BYTES, CheckpointError
from llmos.kernels import METHODS, quantize
from llmos.kernels.quantized import GROUP_SIZE


def quantize_checkpoint(source: str | Path, out: str | Path, method: str,
                        max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> Path:
    """Write `source` (a checkpoint directory or GGUF file) with its linears in `method` to `out`."""
    if method not in METHODS:
        raise CheckpointError(f"quantization method {method!r} is not known; expected one of {list(METHODS)}")
    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise CheckpointError(f"output {out} is the source; choose a different output path")
    if source.is_file():
        from llmos.checkpoint.gguf_load import load_gguf, load_gguf_tokenizer

        model = load_gguf(source, quantize_mode=method)  # Q4_0/Q4_1 codes kept as they are for int4
        tokenizer, generation = load_gguf_tokenizer(source), dict(model.generation_config)
    else:
        held = stored_method(read_config(source)[2])
        if held:
            raise CheckpointError(f"{source} is already quantized ({held}); quantize from the float checkpoint "
                                  "it was made from")
        model = quantize(load_pretrained(source, dtype="auto"), method)
        copied = CopiedTokenizer(source)
        tokenizer = copied if copied.files else None
        generation_file = source / GENERATION_CONFIG_NAME
        generation = json.loads(generation_file.read_text()) if generation_file.is_file() else None
    if quantization_entry(model) is None:
        raise CheckpointError(f"no linear layer of {source} fits the {method} kernel (int4 needs out % 16 == 0 and "
                              f"in % {GROUP_SIZE} == 0); nothing would be quantized")
    return save_pretrained(model, out, tokenizer=tokenizer, generation_config=generation,
                           max_shard_bytes=max_shard_bytes)
