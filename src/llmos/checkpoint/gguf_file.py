"""Layer 3: open a GGUF file (the format of llama.cpp and Ollama) with the `gguf` package.

Parsing is llama.cpp's own Python reader, `gguf.GGUFReader`; nothing here reads
bytes by hand beyond the four-byte magic check that tells "not a GGUF file"
apart from "a damaged one". The result is plain Python: `metadata` maps every
key (`general.architecture`, `llama.block_count`, `tokenizer.ggml.tokens`, ...)
to its value (strings, numbers, lists), and `tensors` maps each tensor name to
the reader's memory-mapped tensor (raw bytes for quantized types, so a loader
can hand blocks to a kernel without a float copy).

`read_gguf_header` is the cheap look for listings (`llmos models` over an
Ollama store): the reader parses every token string of the vocabulary (seconds
for a 128k-token file), so it walks the header itself, with the gguf
package's type codes, keeping the scalar metadata and each tensor's type and
shape, and skipping arrays by their lengths without reading them.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from dataclasses import dataclass, field
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


@dataclass
class GGUFHeader:
    """What a GGUF file's header says, without its arrays: scalar metadata (strings, numbers),
    the count of tensor types among its matrices, and its parameter count."""

    metadata: dict[str, Any] = field(default_factory=dict)
    matrix_types: Counter = field(default_factory=Counter)  # type name -> matrices (2+ dims) of that type
    parameters: int = 0

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def read_gguf_header(path: str | Path) -> GGUFHeader:
    """The header of a GGUF file (version 2 or 3, little-endian), read without parsing its arrays."""
    import gguf

    path = Path(path)
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _walk_header(data, gguf.GGMLQuantizationType)
    except (OSError, ValueError, struct.error, IndexError, KeyError) as exc:
        raise GGUFError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc})") from None


def _walk_header(data: Any, types: Any) -> GGUFHeader:
    offset = 0

    def take(fmt: str) -> Any:
        nonlocal offset
        (value,) = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal offset
        n = take("<Q")
        offset += n
        return bytes(data[offset - n:offset]).decode("utf-8", "replace")

    def skip(kind: int, count: int) -> None:
        nonlocal offset
        if kind == _STRING:
            for _ in range(count):
                offset += 8 + struct.unpack_from("<Q", data, offset)[0]
        elif kind == _ARRAY:
            for _ in range(count):
                inner, n = take("<I"), take("<Q")
                skip(inner, n)
        else:
            offset += struct.calcsize(_SCALARS[kind]) * count

    if bytes(data[:4]) != GGUF_MAGIC:
        raise ValueError(f"it starts with {bytes(data[:4])!r}, not {GGUF_MAGIC!r}")
    offset = 4
    version = take("<I")
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} (little-endian 2 or 3 are read)")
    tensors, pairs = take("<Q"), take("<Q")
    header = GGUFHeader()
    for _ in range(pairs):
        key, kind = text(), take("<I")
        if kind == _STRING:
            header.metadata[key] = text()
        elif kind == _ARRAY:
            inner, n = take("<I"), take("<Q")
            skip(inner, n)
        else:
            header.metadata[key] = take(_SCALARS[kind])
    for _ in range(tensors):
        text()
        dims = [take("<Q") for _ in range(take("<I"))]
        kind = take("<I")
        take("<Q")  # the data offset
        count = 1
        for d in dims:
            count *= d
        header.parameters += count
        if len(dims) > 1:
            header.matrix_types[types(kind).name] += 1
    return header
