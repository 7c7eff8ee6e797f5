"""Layer 7: per-request sampling settings, and the log-probabilities reported with tokens.

Every request in the running batch keeps its own temperature, top-p, top-k,
seed and logprob wishes (`batch_sampler` applies them to the whole batch).
A temperature too small to divide by (below `GREEDY_TEMPERATURE`, vLLM's
threshold too) means greedy decoding: dividing by 1e-40 would overflow the
scores to inf and the softmax to nan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from llmos.generation.logits_process import LogitsProcessor


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    min_p: float = 0.0  # 0 = off (vLLM / llama.cpp extension)
    repetition_penalty: float = 1.0  # 1 = off (vLLM / llama.cpp extension)
    seed: int | None = None
    logprobs: int | None = None  # None = none; k >= 0 = chosen token's logprob + top k
    prompt_logprobs: bool = False  # echo + logprobs: score the prompt tokens too
    stop_token_ids: frozenset[int] = field(default_factory=frozenset)
    # response_format: prompt length -> a fresh grammar processor (each choice keeps its own state)
    constraint: Callable[[int], LogitsProcessor] | None = None
    adapter: str | None = None  # a LoRA adapter the served model holds (e.g. "tools"), or the base model

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_TEMPERATURE or self.top_k == 1

    @property
    def plain_argmax(self) -> bool:
        """Greedy on the raw logits: the engine may then pick the batch's argmax for this row."""
        return self.greedy and self.constraint is None and self.repetition_penalty == 1.0


GREEDY_TEMPERATURE = 1e-5


def token_logprobs(
    logprobs: torch.Tensor, token_ids: torch.Tensor, top: int
) -> list[tuple[int, float, list[tuple[int, float]]]]:
    """For rows of log-probabilities (N, V) and chosen ids (N,): (id, logprob, top-k pairs)."""
    chosen = logprobs.gather(-1, token_ids[:, None])[:, 0].tolist()
    if top > 0:
        values, indices = torch.topk(logprobs, top, dim=-1)
        tops = [list(zip(i.tolist(), v.tolist(), strict=True)) for i, v in zip(indices, values, strict=True)]
    else:
        tops = [[] for _ in chosen]
    return list(zip(token_ids.tolist(), chosen, tops, strict=True))
