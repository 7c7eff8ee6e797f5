"""Layer 3: convert a checkpoint between formats: LLMOS <-> Hugging Face, and from GGUF.

`convert_checkpoint(src, out, to="hf")` writes a transformers-loadable copy;
`to="llmos"` writes our own format (from any kind of source). Tokenizer
files and generation_config.json travel with the weights. A GGUF source is
dequantized to float (its tokenizer and generation defaults are written as
files), so the result can be fine-tuned and exported like any checkpoint.
A quantized LLMOS checkpoint converts to `llmos` as it is (still quantized)
and is refused for `hf`: transformers cannot read our int8/int4 layout, and
dequantizing would pass off a lossy copy as the model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from llmos.checkpoint.hf_export import export_hf, refuse_quantized
from llmos.checkpoint.pretrained import (
    GENERATION_CONFIG_NAME,
    TOKENIZER_FILES,
    load_pretrained,
    read_config,
    save_pretrained,
)
from llmos.checkpoint.quantization import stored_method
from llmos.checkpoint.safetensors_io import DEFAULT_SHARD_BYTES, CheckpointError

FORMATS = ("hf", "llmos")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str | int) -> int:
    """'2GB', '500MB', '10KiB' or a byte count -> bytes."""
    if isinstance(text, int):
        return text
    raw = text.strip().upper()
    digits = raw.rstrip("KMGIB")
    unit = raw[len(digits):]
    try:
        value = float(digits)
    except ValueError:
        value = -1.0
    if unit not in _UNITS or value <= 0:
        raise CheckpointError(f"size {text!r} is not valid; expected a positive number with an optional unit "
                              "such as 500MB, 2GB or 1GiB")
    return int(value * _UNITS[unit])


class CopiedTokenizer:
    """Adapter so save_pretrained copies tokenizer files verbatim from a source directory."""

    def __init__(self, source: Path) -> None:
        self.files = [source / name for name in TOKENIZER_FILES if (source / name).is_file()]

    def save_pretrained(self, directory: str) -> None:
        for path in self.files:
            shutil.copy2(path, Path(directory) / path.name)


def convert_checkpoint(
    source: str | Path, out: str | Path, to: str = "hf", dtype: Any = "auto",
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> Path:
    if to not in FORMATS:
        raise CheckpointError(f"--to {to!r} is not a known format; expected one of {list(FORMATS)}")
    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise CheckpointError(f"output {out} is the source directory; choose a different output path")
    if source.is_file():
        return _convert_gguf(source, out, to, dtype, max_shard_bytes)
    if to == "hf":
        refuse_quantized(stored_method(read_config(source)[2]), str(source))
    model = load_pretrained(source, dtype=dtype)
    if to == "hf":
        return export_hf(model, out, max_shard_bytes=max_shard_bytes, source_dir=source)
    tokenizer = CopiedTokenizer(source)
    generation = None
    if (source / GENERATION_CONFIG_NAME).is_file():
        generation = json.loads((source / GENERATION_CONFIG_NAME).read_text())
    return save_pretrained(model, out, tokenizer=tokenizer if tokenizer.files else None,
                           generation_config=generation, max_shard_bytes=max_shard_bytes)


def _convert_gguf(source: Path, out: Path, to: str, dtype: Any, max_shard_bytes: int) -> Path:
    from llmos.checkpoint.gguf_load import load_gguf, load_gguf_tokenizer

    model = load_gguf(source, quantize_mode="none", dtype=None if dtype == "auto" else dtype)
    tokenizer = load_gguf_tokenizer(source)
    generation = dict(model.generation_config)
    if to == "hf":
        return export_hf(model, out, max_shard_bytes=max_shard_bytes, tokenizer=tokenizer,
                         generation_config=generation)
    return save_pretrained(model, out, tokenizer=tokenizer, generation_config=generation,
                           max_shard_bytes=max_shard_bytes)
