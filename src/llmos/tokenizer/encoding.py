"""Layer 3 (formats): `BatchEncoding`, the dict a tokenizer call returns, and its tensor conversion.

A plain dict of lists (input_ids, attention_mask, token_type_ids) that can turn
itself into tensors and move to a device, like transformers' object of the same
name, so model code can do `model(**tokenizer(texts, return_tensors="pt"))`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmos.errors import LLMOSError

if TYPE_CHECKING:  # torch loads when a tensor is asked for: `llmos --help` reads this package without it
    import torch


def to_tensor(name: str, value: Any) -> torch.Tensor:
    """A list (or list of equal-length lists) of ints -> a LongTensor (1-D input becomes (1, T))."""
    import torch

    if isinstance(value, torch.Tensor):
        return value
    rows = value if value and isinstance(value[0], list) else [value]
    lengths = {len(row) for row in rows}
    if len(lengths) > 1:
        raise LLMOSError(
            f"cannot make a tensor of {name}: sequences have lengths {sorted(lengths)}; "
            "pass padding=True (or padding='max_length') to get equal lengths"
        )
    return torch.tensor(rows, dtype=torch.long)


class BatchEncoding(dict):
    """Tokenizer output: `input_ids`, `attention_mask` and, where the tokenizer has them, `token_type_ids`."""

    def __init__(self, data: dict[str, Any] | None = None, encodings: list | None = None) -> None:
        super().__init__(data or {})
        self.encodings = encodings

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def convert_to_tensors(self, tensor_type: str | None = "pt") -> BatchEncoding:
        """Turn every field into a LongTensor in place; only "pt" (PyTorch) is supported."""
        if tensor_type is None:
            return self
        if tensor_type != "pt":
            raise LLMOSError(f"return_tensors={tensor_type!r} is not supported; use 'pt' or None")
        for key, value in list(self.items()):
            self[key] = to_tensor(key, value)
        return self

    def to(self, device: str | torch.device) -> BatchEncoding:
        """Move tensor fields to `device` (lists are left as they are)."""
        import torch

        for key, value in list(self.items()):
            if isinstance(value, torch.Tensor):
                self[key] = value.to(device)
        return self
