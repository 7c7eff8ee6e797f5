"""Layer 6 (evaluation): zero-shot classification with a causal LM, by scoring the label words.

The model is asked a question whose answer is one of the labels; each label's
score is the log-probability that the reply begins with that word (lower case
or capitalised, summed), read from one forward pass per prompt, with no
decoding (`generation.scoring`, or a `Generator`'s `next_token_log_probs`, which
the sentiment pipeline uses so a served model scores through its engine). The
SST-2 benchmark's zero-shot row uses it too.
"""

from __future__ import annotations

from typing import Any

import torch

from llmos.errors import LLMOSError
from llmos.generation.scoring import next_token_log_probs


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


def label_word_log_probs(model: Any, tokenizer: Any, prompts: list[list[int]], labels: list[str],
                         batch_size: int = 16) -> torch.Tensor:
    """(len(prompts), len(labels)) log-probabilities that the token after each prompt begins a label
    word (see `label_word_ids`). `prompts` are token ids, usually a chat template with
    add_generation_prompt=True."""
    words = label_word_ids(tokenizer, labels)
    if not prompts:
        return torch.zeros(0, len(labels))
    return label_scores(next_token_log_probs(model, prompts, [i for w in words for i in w], batch_size), words)


def label_scores(log_probs: torch.Tensor, words: list[list[int]]) -> torch.Tensor:
    """(N, labels): each label's log-probability, its word forms' summed (`log_probs` (N, all forms), in
    the order of `label_word_ids` flattened)."""
    out, start = [], 0
    for forms in words:
        out.append(log_probs[:, start:start + len(forms)].logsumexp(-1))
        start += len(forms)
    return torch.stack(out, -1)
