"""Layer 6 (data): memory-mapped token shards on disk, and their writer.

A prepared data directory holds, per split (``train``, ``val``):

- ``{split}_{k:06d}.bin``: raw little-endian token ids (uint16 when the
  vocabulary fits, else uint32), one long stream in which every document is
  followed by the EOS id; a document may continue into the next shard;
- ``{split}_doc_starts.bin``: uint64 offset of each document's first token in
  that stream (for objectives that need document boundaries, like NSP);

plus ``index.json`` describing it all and the tokenizer files. Raw files (not
``.npy``, never pickle) so any tool can ``np.memmap`` them; nothing is ever
loaded whole into memory.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import numpy as np

from llmos.errors import LLMOSError

INDEX_FILE = "index.json"
INDEX_FORMAT = "llmos-token-shards"
INDEX_VERSION = 1
SPLITS = ("train", "val")


class ShardError(LLMOSError):
    """A token-shard directory or request that does not fit what is on disk."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of a vocabulary of this size."""
    if vocab_size < 1:
        raise ShardError(f"vocab_size must be >= 1, got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


class ShardWriter:
    """Appends token ids of one split to fixed-size shard files, recording document starts."""

    def __init__(self, out_dir: Path, split: str, dtype: np.dtype, shard_tokens: int) -> None:
        if shard_tokens < 1:
            raise ShardError(f"shard_tokens must be >= 1, got {shard_tokens}")
        self.out_dir = Path(out_dir)
        self.split = split
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.shard_tokens = shard_tokens
        self.shards: list[dict] = []  # {"file": name, "tokens": n}
        self.num_tokens = 0
        self.num_documents = 0
        self._file = None
        self._in_current = 0
        self._doc_starts_name = f"{split}_doc_starts.bin"
        self._doc_starts = open(self.out_dir / self._doc_starts_name, "wb", buffering=1 << 16)

    def add_document(self, ids: np.ndarray) -> None:
        """Write one document's ids (EOS already appended by the caller)."""
        self._doc_starts.write(np.uint64(self.num_tokens).astype("<u8").tobytes())
        self.num_documents += 1
        ids = np.asarray(ids).astype(self.dtype, copy=False)
        while len(ids):
            if self._file is None or self._in_current == self.shard_tokens:
                self._open_next()
            take = min(len(ids), self.shard_tokens - self._in_current)
            self._file.write(ids[:take].tobytes())  # buffered: many small documents stay cheap
            self._in_current += take
            self.shards[-1]["tokens"] += take
            self.num_tokens += take
            ids = ids[take:]

    def _open_next(self) -> None:
        if self._file is not None:
            self._file.close()
        name = f"{self.split}_{len(self.shards):06d}.bin"
        self._file = open(self.out_dir / name, "wb", buffering=1 << 20)
        self.shards.append({"file": name, "tokens": 0})
        self._in_current = 0

    def close(self) -> dict:
        """Close the files and return this split's entry for index.json."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._doc_starts.close()
        return {
            "tokens": self.num_tokens,
            "documents": self.num_documents,
            "shards": self.shards,
            "doc_starts": self._doc_starts_name,
        }


def read_index(data_dir: str | Path) -> dict:
    """Load and check ``index.json`` of a prepared data directory."""
    data_dir = Path(data_dir)
    path = data_dir / INDEX_FILE
    if not path.is_file():
        raise ShardError(
            f"{data_dir} is not a prepared data directory (no {INDEX_FILE}); "
            "make one with `llmos data prepare`"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ShardError(f"{path} is not valid JSON ({exc.msg})") from None
    if index.get("format") != INDEX_FORMAT:
        raise ShardError(f"{path} is not an {INDEX_FORMAT} index (format={index.get('format')!r})")
    return index


class TokenShards:
    """One split of a prepared data directory, read through ``np.memmap``.

    ``window(start, length)`` returns int64 ids from the split's token stream,
    crossing shard boundaries as needed.
    """

    def __init__(self, data_dir: str | Path, split: str = "train") -> None:
        self.data_dir = Path(data_dir)
        index = read_index(self.data_dir)
        splits = index.get("splits", {})
        if split not in splits:
            raise ShardError(
                f"split {split!r} is not in {self.data_dir}; available: {sorted(splits)}"
            )
        self.split = split
        self.index = index
        self.dtype = np.dtype(index["dtype"]).newbyteorder("<")
        self.vocab_size: int = int(index["vocab_size"])
        self.eos_id: int = int(index["eos_id"])
        entry = splits[split]
        self.num_documents: int = int(entry["documents"])
        self._shards: list[np.memmap] = []
        self._offsets: list[int] = []  # first token index of each shard
        total = 0
        for shard in entry["shards"]:
            path = self.data_dir / shard["file"]
            expected = int(shard["tokens"]) * self.dtype.itemsize
            if not path.is_file() or path.stat().st_size != expected:
                found = path.stat().st_size if path.is_file() else "missing"
                raise ShardError(
                    f"shard {path} should hold {expected} bytes, found {found}; "
                    "re-run `llmos data prepare`"
                )
            if int(shard["tokens"]) == 0:
                continue
            self._offsets.append(total)
            self._shards.append(np.memmap(path, dtype=self.dtype, mode="r"))
            total += int(shard["tokens"])
        self.num_tokens: int = total
        self._doc_starts_path = self.data_dir / entry["doc_starts"]

    @property
    def tokenizer_dir(self) -> Path:
        """Where the tokenizer used for these shards was saved."""
        return self.data_dir / self.index.get("tokenizer_dir", ".")

    def __len__(self) -> int:
        return self.num_tokens

    def __repr__(self) -> str:
        return (
            f"TokenShards({str(self.data_dir)!r}, split={self.split!r}, tokens={self.num_tokens}, "
            f"documents={self.num_documents}, dtype={self.dtype.name})"
        )

    def document_starts(self) -> np.ndarray:
        """uint64 offsets of each document's first token (memory-mapped)."""
        if self.num_documents == 0:
            return np.zeros(0, dtype=np.uint64)
        return np.memmap(self._doc_starts_path, dtype="<u8", mode="r")

    def window(self, start: int, length: int) -> np.ndarray:
        """``length`` token ids from position ``start`` as int64, across shard boundaries."""
        start, length = int(start), int(length)
        if length < 0 or start < 0 or start + length > self.num_tokens:
            raise ShardError(
                f"window [{start}, {start + length}) is outside the {self.split} split, "
                f"which holds tokens [0, {self.num_tokens})"
            )
        out = np.empty(length, dtype=np.int64)
        k = bisect.bisect_right(self._offsets, start) - 1
        filled = 0
        while filled < length:
            shard = self._shards[k]
            local = start + filled - self._offsets[k]
            take = min(length - filled, len(shard) - local)
            out[filled : filled + take] = shard[local : local + take]
            filled += take
            k += 1
        return out
