"""Each logits processor against its reference formula, written out here in plain Python."""

import math

import pytest
import torch

from llmos.generation import (
    GenerationConfig,
    MinNewTokensProcessor,
    MinPWarper,
    NoRepeatNGramProcessor,
    RepetitionPenaltyProcessor,
    TemperatureWarper,
    TopKWarper,
    TopPWarper,
    build_logits_processors,
)


def kept(scores: torch.Tensor) -> list[set[int]]:
    return [set(torch.nonzero(torch.isfinite(row)).flatten().tolist()) for row in scores]


@pytest.fixture
def scores():
    return torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * 3


def test_temperature_divides_scores(scores):
    torch.testing.assert_close(TemperatureWarper(0.5)(None, scores), scores * 2)


@pytest.mark.parametrize("k", [1, 5, 50])
def test_top_k_keeps_exactly_the_k_highest(scores, k):
    for row, keep in zip(scores.tolist(), kept(TopKWarper(k)(None, scores)), strict=True):
        assert keep == set(sorted(range(len(row)), key=lambda i: -row[i])[:k])


@pytest.mark.parametrize("p", [0.05, 0.3, 0.9, 1.0])
def test_top_p_keeps_the_smallest_set_reaching_mass_p(scores, p):
    for row, keep in zip(scores.tolist(), kept(TopPWarper(p)(None, scores)), strict=True):
        z = sum(math.exp(s) for s in row)
        order = sorted(range(len(row)), key=lambda i: -row[i])
        expected, mass = set(), 0.0
        for i in order:  # add the most likely tokens until the mass reaches p
            expected.add(i)
            mass += math.exp(row[i]) / z
            if mass >= p - 1e-9:
                break
        assert keep == expected


@pytest.mark.parametrize("min_p", [0.0, 0.05, 0.2, 1.0])
def test_min_p_keeps_tokens_at_least_min_p_times_the_top_probability(scores, min_p):
    for row, keep in zip(scores.tolist(), kept(MinPWarper(min_p)(None, scores)), strict=True):
        z = sum(math.exp(s) for s in row)
        probs = [math.exp(s) / z for s in row]
        assert keep == {i for i, q in enumerate(probs) if q >= min_p * max(probs) - 1e-9}


def test_min_tokens_to_keep_is_respected_by_every_warper(scores):
    for warper in (TopKWarper(1, 3), TopPWarper(0.01, 3), MinPWarper(1.0, 3)):
        assert all(len(k) >= 3 for k in kept(warper(None, scores)))


def test_repetition_penalty_divides_positive_and_multiplies_negative_scores():
    s = torch.tensor([[2.0, -2.0, 1.0, -1.0]])
    out = RepetitionPenaltyProcessor(2.0)(torch.tensor([[0, 1, 1]]), s)
    assert out.tolist() == [[1.0, -4.0, 1.0, -1.0]]


def test_no_repeat_ngram_bans_tokens_completing_a_seen_ngram():
    s = torch.zeros(1, 10)
    out = NoRepeatNGramProcessor(3)(torch.tensor([[1, 2, 7, 1, 2, 8, 1, 2]]), s)
    assert kept(out)[0] == set(range(10)) - {7, 8}
    assert kept(NoRepeatNGramProcessor(1)(torch.tensor([[4, 5]]), s))[0] == set(range(10)) - {4, 5}


def test_min_new_tokens_blocks_eos_until_enough_tokens():
    s = torch.zeros(1, 6)
    proc = MinNewTokensProcessor(prompt_length=3, min_new_tokens=2, eos_token_ids=[5, 4])
    assert kept(proc(torch.zeros(1, 4, dtype=torch.long), s))[0] == {0, 1, 2, 3}
    assert kept(proc(torch.zeros(1, 5, dtype=torch.long), s))[0] == set(range(6))


def test_build_logits_processors_order_and_sampling_only_warpers():
    cfg = GenerationConfig(do_sample=True, temperature=0.7, top_k=10, top_p=0.9, min_p=0.1,
                           repetition_penalty=1.2, no_repeat_ngram_size=2)
    kinds = [type(p).__name__ for p in build_logits_processors(cfg)]
    assert kinds == ["RepetitionPenaltyProcessor", "NoRepeatNGramProcessor", "TemperatureWarper",
                     "TopKWarper", "TopPWarper", "MinPWarper"]
    greedy = GenerationConfig(temperature=0.7, top_k=10, top_p=0.9)
    assert build_logits_processors(greedy) == []


def test_warpers_match_transformers_processors(scores):
    tp = pytest.importorskip("transformers.generation.logits_process")
    ids = torch.randint(0, 50, (4, 6))
    pairs = [(TopKWarper(7), tp.TopKLogitsWarper(7)), (TopPWarper(0.8), tp.TopPLogitsWarper(0.8)),
             (MinPWarper(0.1), tp.MinPLogitsWarper(0.1)),
             (RepetitionPenaltyProcessor(1.3), tp.RepetitionPenaltyLogitsProcessor(1.3)),
             (NoRepeatNGramProcessor(2), tp.NoRepeatNGramLogitsProcessor(2))]
    for ours, theirs in pairs:
        torch.testing.assert_close(ours(ids, scores.clone()), theirs(ids, scores.clone()))
