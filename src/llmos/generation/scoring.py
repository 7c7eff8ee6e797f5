"""Layer 5: the log-probabilities of chosen tokens coming next after each prompt, with no decoding.

Zero-shot classification asks the model a question and scores the label words
as the reply's first token (`evaluation.zero_shot`, the sentiment pipeline);
this is the forward pass behind it. Prompts usually share a long prefix (the
system turn, the question): it runs once, and each batch continues from a copy
of its KV cache. Rows are right-padded after the shared prefix; a padded
position is never attended to by the real tokens.
"""

from __future__ import annotations

from typing import Any

import torch

from llmos.errors import LLMOSError


def shared_prefix(prompts: list[list[int]]) -> int:
    """How many leading tokens every prompt shares, leaving at least one of each to run."""
    first, n = prompts[0], min(map(len, prompts)) - 1
    for other in prompts[1:]:
        n = next((i for i in range(n) if other[i] != first[i]), n)
    return max(n, 0)


@torch.inference_mode()
def next_token_log_probs(model: Any, prompts: list[list[int]], token_ids: list[int],
                         batch_size: int = 16) -> torch.Tensor:
    """(len(prompts), len(token_ids)) log-probabilities that each of `token_ids` comes right after
    each prompt (token ids, e.g. a chat template with add_generation_prompt=True)."""
    from llmos.model.cache import KVCache

    if batch_size < 1:
        raise LLMOSError(f"batch_size={batch_size} must be at least 1")
    if not prompts:
        return torch.zeros(0, len(token_ids))
    n_prefix = shared_prefix(prompts)
    device = model.device
    prefix = None
    if n_prefix:
        prefix = KVCache(model.config, 1, max_len=n_prefix, dtype=model.dtype, device=device)
        model.transformer(torch.tensor([prompts[0][:n_prefix]], device=device), cache=prefix)
    wanted = torch.tensor(token_ids, dtype=torch.long, device=device)
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
        scores.append(logprobs[:, wanted])
    return torch.cat(scores).cpu()
