"""Layer 5: logits processors: composable callables `(input_ids (B, T), scores (B, V)) -> scores`.

Each one is one formula, kept to the reference definitions (and Hugging Face's
order and `min_tokens_to_keep` rules) so results match token for token.
Tokens removed by a warper get -inf. `build_logits_processors` turns a
`GenerationConfig` into the list for one request; the serving engine reuses it.
A processor that keeps state per row may define `follow_rows(parents, live)`;
the decoding loops call it after each step (see `follow_rows`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from llmos.generation_config import GenerationConfig

LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NEG_INF = float("-inf")


class TemperatureWarper:
    """scores / temperature: < 1 sharpens the distribution, > 1 flattens it."""

    def __init__(self, temperature: float) -> None:
        self.temperature = float(temperature)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores / self.temperature


class TopKWarper:
    """Keep the k highest scores (ties with the k-th kept too)."""

    def __init__(self, top_k: int, min_tokens_to_keep: int = 1) -> None:
        self.top_k = max(int(top_k), min_tokens_to_keep)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        k = min(self.top_k, scores.shape[-1])
        kth = torch.topk(scores, k, dim=-1).values[..., -1:]
        return scores.masked_fill(scores < kth, NEG_INF)


class TopPWarper:
    """Nucleus: keep the smallest set of most likely tokens whose probability mass reaches top_p."""

    def __init__(self, top_p: float, min_tokens_to_keep: int = 1) -> None:
        self.top_p = float(top_p)
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        sorted_scores, sorted_index = torch.sort(scores, dim=-1, descending=False)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        # Ascending order: drop the low tail whose mass stays within 1 - top_p.
        drop_sorted = cumulative <= (1 - self.top_p)
        drop_sorted[..., -self.min_tokens_to_keep:] = False
        drop = drop_sorted.scatter(-1, sorted_index, drop_sorted)
        return scores.masked_fill(drop, NEG_INF)


class MinPWarper:
    """Keep tokens whose probability is at least min_p times the most likely token's."""

    def __init__(self, min_p: float, min_tokens_to_keep: int = 1) -> None:
        self.min_p = float(min_p)
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = scores.softmax(dim=-1)
        drop = probs < self.min_p * probs.amax(dim=-1, keepdim=True)
        if self.min_tokens_to_keep > 1:
            order = torch.argsort(scores, dim=-1, descending=True)
            drop_sorted = drop.gather(-1, order)
            drop_sorted[..., : self.min_tokens_to_keep] = False
            drop = drop_sorted.scatter(-1, order, drop_sorted)
        return scores.masked_fill(drop, NEG_INF)


class RepetitionPenaltyProcessor:
    """CTRL's penalty on every token already in the sequence: positive scores / p, negative * p."""

    def __init__(self, penalty: float) -> None:
        self.penalty = float(penalty)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        seen = scores.gather(1, input_ids)
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return scores.scatter(1, input_ids, seen)


class NoRepeatNGramProcessor:
    """Forbid any token that would repeat an n-gram already present in the sequence."""

    def __init__(self, ngram_size: int) -> None:
        self.n = int(ngram_size)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        n, T = self.n, input_ids.shape[1]
        if T + 1 < n:
            return scores
        scores = scores.clone()
        for row, ids in enumerate(input_ids.tolist()):
            prefix = tuple(ids[T - n + 1:]) if n > 1 else ()
            banned = {ids[i + n - 1] for i in range(T - n + 1) if tuple(ids[i:i + n - 1]) == prefix}
            if banned:
                scores[row, list(banned)] = NEG_INF
        return scores


class MinNewTokensProcessor:
    """Forbid end-of-sequence tokens until min_new_tokens have been generated."""

    def __init__(self, prompt_length: int, min_new_tokens: int, eos_token_ids: Sequence[int]) -> None:
        self.prompt_length = prompt_length
        self.min_new_tokens = min_new_tokens
        self.eos = list(eos_token_ids)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] - self.prompt_length < self.min_new_tokens:
            scores = scores.clone()
            scores[:, self.eos] = NEG_INF
        return scores


def build_logits_processors(config: GenerationConfig, prompt_length: int = 0) -> list[LogitsProcessor]:
    """The processors one request needs, in Hugging Face's order: penalties first, then the
    sampling warpers (temperature, top-k, top-p, min-p) when `do_sample`."""
    processors: list[LogitsProcessor] = []
    if config.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyProcessor(config.repetition_penalty))
    if config.no_repeat_ngram_size > 0:
        processors.append(NoRepeatNGramProcessor(config.no_repeat_ngram_size))
    if config.min_new_tokens > 0 and config.eos_token_ids:
        processors.append(MinNewTokensProcessor(prompt_length, config.min_new_tokens, config.eos_token_ids))
    if config.do_sample:
        # Beam sampling must keep a non-EOS continuation alive, as in transformers.
        keep = len(config.eos_token_ids) + 1 if config.num_beams > 1 else 1
        if config.num_beams > 1 and not config.eos_token_ids:
            keep = 2
        if config.temperature != 1.0:
            processors.append(TemperatureWarper(config.temperature))
        if config.top_k:
            processors.append(TopKWarper(config.top_k, keep))
        if config.top_p < 1.0:
            processors.append(TopPWarper(config.top_p, keep))
        if config.min_p is not None:
            processors.append(MinPWarper(config.min_p, keep))
    return processors


def apply_processors(
    processors: Sequence[LogitsProcessor], input_ids: torch.Tensor, scores: torch.Tensor
) -> torch.Tensor:
    for processor in processors:
        scores = processor(input_ids, scores)
    return scores


def follow_rows(processors: Sequence[LogitsProcessor], parents: torch.Tensor | None, live: torch.Tensor) -> None:
    """Tell processors that keep per-row state (the grammar matchers) that row i now continues
    row parents[i] (beam search; None: each row itself) and which rows are still live (B,)."""
    for processor in processors:
        follow = getattr(processor, "follow_rows", None)
        if follow is not None:
            follow(parents, live)
