"""Layer 6 (evaluation): perplexity of a causal LM on a text file, over sliding windows.

The whole file is tokenized once (with the tokenizer's special tokens, e.g. a
BOS, as a prompt would be). Windows of `window` tokens (default: the model's
context) start every `stride` tokens (default: `window`, disjoint windows).
Each window scores only the tokens no earlier window scored, so every token
after the first is predicted exactly once; with stride < window those
predictions see at least `window - stride` tokens of context. The result is
the token-weighted mean negative log-likelihood (`loss`, nats per token) and
`perplexity = exp(loss)`: the same as exp of the mean cross-entropy over all
scored tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from llmos.data.labelled import DataError
from llmos.errors import LLMOSError
from llmos.model.heads import IGNORE_INDEX

Progress = Callable[[int, int], None]  # (completed, total)


def window_spans(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, n_scored) per window: tokens [begin, end) are fed, the last n_scored are scored."""
    spans, begin, scored_until = [], 0, 0
    while True:
        end = min(begin + window, n_tokens)
        spans.append((begin, end, min(end - scored_until, end - begin - 1)))
        scored_until = end
        if end == n_tokens:
            return spans
        begin += stride


def _batch(ids: torch.Tensor, spans: list[tuple[int, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded inputs (B, T) and shifted targets (B, T) with unscored positions at IGNORE_INDEX.
    Right padding needs no attention mask: a causal model's real tokens never see the pads."""
    width = max(end - begin for begin, end, _ in spans)
    inputs = torch.zeros(len(spans), width, dtype=torch.long)
    targets = torch.full((len(spans), width), IGNORE_INDEX, dtype=torch.long)
    for row, (begin, end, n_scored) in enumerate(spans):
        length = end - begin
        inputs[row, :length] = ids[begin:end]
        # position t predicts token t + 1; the last n_scored tokens of the window are the scored ones
        targets[row, length - 1 - n_scored:length - 1] = ids[end - n_scored:end]
    return inputs, targets


@torch.inference_mode()
def perplexity_of_ids(model: Any, ids: list[int] | torch.Tensor, window: int | None = None,
                      stride: int | None = None, batch_size: int = 1, max_windows: int | None = None,
                      progress: Progress | None = None) -> dict[str, Any]:
    """loss (mean NLL per scored token), perplexity, tokens (scored), windows, window, stride.
    max_windows: score only the first that many windows (a quick estimate on a big file)."""
    config = model.config
    if not getattr(config, "causal", True):
        raise LLMOSError("perplexity needs a causal (decoder) language model; this one is an encoder")
    window = config.max_seq_len if window is None else window
    stride = window if stride is None else stride
    if not 2 <= window <= config.max_seq_len:
        raise LLMOSError(f"window={window} must be in 2..{config.max_seq_len} (the model's context)")
    if not 1 <= stride <= window:
        raise LLMOSError(f"stride={stride} must be in 1..window ({window})")
    if batch_size < 1:
        raise LLMOSError(f"batch_size={batch_size} must be at least 1")
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    if ids.numel() < 2:
        raise LLMOSError(f"perplexity needs at least 2 tokens, got {ids.numel()}")
    spans = window_spans(ids.numel(), window, stride)
    if max_windows is not None:
        if max_windows < 1:
            raise LLMOSError(f"max_windows={max_windows} must be at least 1")
        spans = spans[:max_windows]
    total_nll, total_tokens = 0.0, 0
    device = model.device
    for start in range(0, len(spans), batch_size):
        chunk = spans[start:start + batch_size]
        inputs, targets = _batch(ids, chunk)
        count = sum(n for _, _, n in chunk)
        if count:  # (a last window of one token scores nothing)
            loss = model(inputs.to(device), targets=targets.to(device)).loss  # mean over the scored tokens
            total_nll += float(loss) * count
            total_tokens += count
        if progress is not None:
            progress(min(start + batch_size, len(spans)), len(spans))
    mean = total_nll / total_tokens
    return {"loss": mean, "perplexity": math.exp(mean), "tokens": total_tokens, "windows": len(spans),
            "window": window, "stride": stride}


def evaluate_perplexity(model: Any, tokenizer: Any, path: str | Path, window: int | None = None,
                        stride: int | None = None, batch_size: int = 1, max_windows: int | None = None,
                        progress: Progress | None = None) -> dict[str, Any]:
    """Perplexity of `model` on the text file `path`; see the module docstring.

    Returns {"n_examples": windows, "metrics": {loss, perplexity, tokens}, "window", "stride"}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise DataError(f"{path}: the file is empty; perplexity needs text")
    ids = tokenizer.encode(text)
    result = perplexity_of_ids(model, ids, window, stride, batch_size, max_windows, progress)
    return {
        "n_examples": result["windows"],
        "metrics": {"loss": result["loss"], "perplexity": result["perplexity"], "tokens": result["tokens"]},
        "window": result["window"],
        "stride": result["stride"],
    }
