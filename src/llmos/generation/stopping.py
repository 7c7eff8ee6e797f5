"""Layer 5: when a sequence is finished: end-of-sequence tokens and stop strings.

Stop strings are matched on decoded text, so one that spans several tokens
(" Paris" + "." + "\\n") is found. After each step only the newest tokens are
decoded: a window one token wider than the longest stop string has characters,
because every token decodes to at least one character (a partial UTF-8 byte
shows as U+FFFD). A string can only newly appear at the end, so older text
never needs re-reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from llmos.generation_config import GenerationError


class StopStringCriteria:
    """`__call__(sequences (N, L), prompt_length) -> (N,) bool`: which rows just produced a stop string."""

    def __init__(self, stop_strings: Sequence[str], tokenizer: Any) -> None:
        if tokenizer is None:
            raise GenerationError(
                f"stop_strings={list(stop_strings)!r} need the tokenizer: pass tokenizer=... to generate"
            )
        self.stop_strings = list(stop_strings)
        self.tokenizer = tokenizer
        self.window = max(len(s) for s in self.stop_strings) + 1

    def __call__(self, sequences: torch.Tensor, prompt_length: int) -> torch.Tensor:
        done = torch.zeros(sequences.shape[0], dtype=torch.bool)
        start = max(prompt_length, sequences.shape[1] - self.window)
        for row, ids in enumerate(sequences[:, start:].tolist()):
            text = decode(self.tokenizer, ids)
            done[row] = any(s in text for s in self.stop_strings)
        return done.to(sequences.device)


def eos_hits(last_tokens: torch.Tensor, eos_ids: torch.Tensor | None) -> torch.Tensor:
    """(N,) bool: which of the newest tokens are end-of-sequence tokens."""
    if eos_ids is None or eos_ids.numel() == 0:
        return torch.zeros_like(last_tokens, dtype=torch.bool)
    return torch.isin(last_tokens, eos_ids)


def decode(tokenizer: Any, ids: list[int]) -> str:
    """Decode token ids with any tokenizer that has `decode(ids, skip_special_tokens=...)`."""
    try:
        return tokenizer.decode(ids, skip_special_tokens=True)
    except TypeError:
        return tokenizer.decode(ids)
