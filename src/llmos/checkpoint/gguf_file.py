"""Layer 3: open a GGUF file (the format of llama.cpp and Ollama) with the `gguf` package.

Parsing is llama.cpp's own Python reader, `gguf.GGUFReader`; nothing here reads
bytes by hand beyond the four-byte magic check that tells "not a GGUF file"
apart from "a damaged one". The result is plain Python: `metadata` maps every
key (`general.architecture`, `llama.block_count`, `tokenizer.ggml.tokens`, ...)
to its value (strings, numbers, lists), and `tensors` maps each tensor name to
the reader's memory-mapped tensor (raw bytes for quantized types, so a loader
can hand blocks to a kernel without a float copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from llmos.errors import LLMOSError

GGUF_MAGIC = b"GGUF"
GGUF_SUFFIX = ".gguf"


class GGUFError(LLMOSError):
    """A GGUF file cannot be used: not GGUF, damaged, or of an unsupported kind (named in the message)."""


@dataclass
class GGUFFile:
    path: Path
    metadata: dict[str, Any]
    tensors: dict[str, Any]  # name -> gguf.ReaderTensor (.data, .tensor_type, .shape)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def get(self, key: str, default: Any = None) -> Any:
        """metadata[key]; `{arch}.` at the start is replaced by the architecture name."""
        return self.metadata.get(key.replace("{arch}", self.architecture), default)

    def require(self, key: str) -> Any:
        full = key.replace("{arch}", self.architecture)
        if full not in self.metadata:
            raise GGUFError(f"{self.path}: metadata key {full!r} is missing; the file is incomplete")
        return self.metadata[full]


def is_gguf(path: str | Path) -> bool:
    """True for a file that starts with the GGUF magic bytes."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(4) == GGUF_MAGIC


def open_gguf(path: str | Path) -> GGUFFile:
    """Read a GGUF file's metadata and tensor table (the tensor data stays memory-mapped).

    The gguf reader takes seconds on a large vocabulary (each token is parsed on its own),
    and loading a model and its tokenizer both need it, so the last few files read are
    kept, keyed by path, size and modification time."""
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"GGUF file {str(path)!r} does not exist")
    stat = path.stat()
    return _open_gguf(path.resolve(), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=4)
def _open_gguf(path: Path, size: int, mtime_ns: int) -> GGUFFile:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise GGUFError(
            f"{path} is not a GGUF file (it starts with {magic!r}, a GGUF file starts with {GGUF_MAGIC!r})"
        )
    import gguf

    try:
        reader = gguf.GGUFReader(path, "r")
        metadata = {name: field.contents() for name, field in reader.fields.items()}
        tensors = {tensor.name: tensor for tensor in reader.tensors}
    except Exception as exc:  # the reader fails with ValueError, IndexError, struct/numpy errors
        raise GGUFError(f"{path} is truncated or corrupt; the GGUF reader failed with: {exc}") from None
    return GGUFFile(path=path, metadata=metadata, tensors=tensors)
