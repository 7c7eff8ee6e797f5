"""Layer 3: read and write tensors as safetensors files, sharded above a size threshold.

Only safetensors: nothing is ever unpickled. Reading is lazy and memory-mapped
(`safe_open`), so a loader can pull one tensor at a time straight into the
model without holding a second copy of the weights. Every failure (missing,
truncated or corrupt file, a shard the index names but the directory lacks)
becomes a `CheckpointError` that names the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from llmos.atomic_files import fsync_file
from llmos.errors import LLMOSError

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
DEFAULT_SHARD_BYTES = 2 * 1024**3
UNSAFE_WEIGHT_FILES = ("pytorch_model.bin", "model.pt", "model.pth", "pytorch_model.bin.index.json")


class CheckpointError(LLMOSError):
    """A checkpoint directory or file cannot be used (missing, incomplete, corrupt, or not fitting the
    model or the run that wants to resume it); the message names it and what was expected."""


def _tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def plan_shards(state: dict[str, torch.Tensor], max_shard_bytes: int) -> list[list[str]]:
    """Group keys (in order) into shards of at most max_shard_bytes (a lone bigger tensor gets its own)."""
    shards: list[list[str]] = [[]]
    size = 0
    for name, tensor in state.items():
        nbytes = _tensor_bytes(tensor)
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def write_state_dict(
    state: dict[str, torch.Tensor],
    directory: str | Path,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    metadata: dict[str, str] | None = None,
) -> list[Path]:
    """Write `state` as model.safetensors, or as shards + index when it exceeds max_shard_bytes.

    Tensors must not share storage (save tied weights once). Returns the files written, fsynced.
    """
    if max_shard_bytes <= 0:
        raise CheckpointError(f"max_shard_bytes={max_shard_bytes} must be a positive number of bytes")
    directory = Path(directory)
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    metadata = {"format": "pt", **(metadata or {})}
    shards = plan_shards(state, max_shard_bytes)
    written: list[Path] = []
    if len(shards) == 1:
        path = directory / WEIGHTS_NAME
        save_file(state, str(path), metadata=metadata)
        written.append(path)
    else:
        weight_map: dict[str, str] = {}
        for i, keys in enumerate(shards, start=1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_file({k: state[k] for k in keys}, str(directory / name), metadata=metadata)
            weight_map.update(dict.fromkeys(keys, name))
            written.append(directory / name)
        index = {
            "metadata": {"total_size": sum(_tensor_bytes(t) for t in state.values())},
            "weight_map": weight_map,
        }
        path = directory / INDEX_NAME
        path.write_text(json.dumps(index, indent=2) + "\n")
        written.append(path)
    for path in written:
        fsync_file(path)
    return written


def weight_files(directory: str | Path) -> dict[str, Path]:
    """Map each tensor name to the safetensors file holding it (single file or sharded index)."""
    directory = Path(directory)
    index_path = directory / INDEX_NAME
    single = directory / WEIGHTS_NAME
    if index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{index_path} is not a valid safetensors index (expected JSON with a 'weight_map'): {exc}"
            ) from None
        files = {name: directory / shard for name, shard in weight_map.items()}
        for shard in sorted(set(files.values())):
            if not shard.is_file():
                raise CheckpointError(f"shard {shard} named in {index_path} is missing")
        return files
    if single.is_file():
        return {}  # resolved lazily: every key lives in the one file
    unsafe = [name for name in UNSAFE_WEIGHT_FILES if (directory / name).exists()]
    if unsafe:
        raise CheckpointError(
            f"{directory} holds {unsafe} but no {WEIGHTS_NAME}: only safetensors weights are "
            "supported (pickle files can run code when loaded); convert them to safetensors first"
        )
    raise CheckpointError(f"{directory} has no {WEIGHTS_NAME} (or {INDEX_NAME}); it holds no weights")


class LazyStateDict:
    """Memory-mapped view of a checkpoint's tensors: keys, shapes, and tensors read on demand."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._stack = ExitStack()
        self._handles: dict[Path, object] = {}
        mapping = weight_files(self.directory)
        if not mapping:
            path = self.directory / WEIGHTS_NAME
            handle = self._open(path)
            mapping = dict.fromkeys(handle.keys(), path)
        self._files = mapping

    def _open(self, path: Path):
        if path not in self._handles:
            try:
                self._handles[path] = self._stack.enter_context(safe_open(str(path), framework="pt"))
            except Exception as exc:  # safetensors raises its own error types for bad headers
                raise CheckpointError(
                    f"{path} is not a readable safetensors file (truncated or corrupt?): {exc}"
                ) from None
        return self._handles[path]

    def keys(self) -> list[str]:
        return list(self._files)

    def __contains__(self, key: str) -> bool:
        return key in self._files

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._open(self._files[key]).get_slice(key).get_shape())

    def dtype(self, key: str) -> str:
        return self._open(self._files[key]).get_slice(key).get_dtype()

    def __getitem__(self, key: str) -> torch.Tensor:
        path = self._files[key]
        try:
            return self._open(path).get_tensor(key)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"cannot read tensor {key!r} from {path} (truncated or corrupt?): {exc}") from None

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        for key in self._files:
            yield key, self[key]

    def close(self) -> None:
        self._stack.close()
        self._handles.clear()

    def __enter__(self) -> LazyStateDict:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
