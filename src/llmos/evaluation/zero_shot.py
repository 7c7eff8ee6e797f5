"""Layer 6 (evaluation): zero-shot classification with a causal LM, by scoring the label words.

The model is asked a question whose answer is one of the labels; each label's
score is the log-probability that the reply begins with that word (lower case
or capitalised, summed), read from one forward pass per prompt, with no
decoding. The SST-2 benchmark's zero-shot row and the sentiment pipeline both
use it. Prompts usually share a long prefix (the system turn, the question):
it runs once and each batch continues from a copy of its KV cache.
"""

from __future__ import annotations

from typing import Any

import torch

from llmos.errors import LLMOSError


def label_word_ids(tokenizer: Any, labels: list[str]) -> list[list[int]]:
    """For each label, the first token of the word as written and capitalised (deduplicated).

    Only the first token is scored, so two labels that begin with the same token cannot be told
    apart: that is an error naming them, never a silent tie."""
    words = []
    for label in labels:
        ids = {tokenizer.encode(form, add_special_tokens=False)[0] for form in dict.fromkeys((label, label.capitalize()))}
        words.append(sorted(ids))
    for i, a in enumerate(labels):
        for j in range(i + 1, len(labels)):
            if set(words[i]) & set(words[j]):
                raise LLMOSError(f"labels {a!r} and {labels[j]!r} begin with the same token for this tokenizer, so "
                                 "their first-token scores are the same; use label words that begin differently")
    return words


def _shared_prefix(prompts: list[list[int]]) -> int:
    """How many leading tokens every prompt shares, leaving at least one of each to run."""
    first, n = prompts[0], min(map(len, prompts)) - 1
    for other in prompts[1:]:
        n = next((i for i in range(n) if other[i] != first[i]), n)
    return max(n, 0)


@torch.inference_mode()
def label_word_log_probs(model: Any, tokenizer: Any, prompts: list[list[int]], labels: list[str],
                         batch_size: int = 16) -> torch.Tensor:
    """(len(prompts), len(labels)) log-probabilities that the token after each prompt begins a label
    word (see `label_word_ids`). `prompts` are token ids, usually a chat template with
    add_generation_prompt=True. Rows are right-padded after the shared prefix; a padded position is
    never attended to by the real tokens."""
    from llmos.model.cache import KVCache

    if batch_size < 1:
        raise LLMOSError(f"batch_size={batch_size} must be at least 1")
    if not prompts:
        return torch.zeros(0, len(labels))
    words = label_word_ids(tokenizer, labels)
    n_prefix = _shared_prefix(prompts)
    device = model.device
    prefix = None
    if n_prefix:
        prefix = KVCache(model.config, 1, max_len=n_prefix, dtype=model.dtype, device=device)
        model.transformer(torch.tensor([prompts[0][:n_prefix]], device=device), cache=prefix)
    scores = []
    for start in range(0, len(prompts), batch_size):
        rows = [p[n_prefix:] for p in prompts[start:start + batch_size]]
        width, n = max(map(len, rows)), len(rows)
        cache = KVCache(model.config, n, max_len=n_prefix + width, dtype=model.dtype, device=device)
        if prefix is not None:
            cache.copy_from(prefix, slice(None), slice(0, n_prefix), slice(None), slice(0, n_prefix))
            cache.length = n_prefix
        input_ids = torch.tensor([r + [0] * (width - len(r)) for r in rows], device=device)  # (B, T)
        mask = torch.tensor([[1] * (n_prefix + len(r)) + [0] * (width - len(r)) for r in rows],
                            device=device)  # (B, P + T)
        h = model.transformer(input_ids, attention_mask=mask, cache=cache)  # (B, T, C)
        last = h[torch.arange(n), torch.tensor([len(r) - 1 for r in rows])]  # (B, C)
        logprobs = model.lm_head(last).float().log_softmax(-1)  # (B, V)
        scores.append(torch.stack([logprobs[:, w].logsumexp(-1) for w in words], -1))
    return torch.cat(scores).cpu()
