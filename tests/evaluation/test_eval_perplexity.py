"""Perplexity over sliding windows equals exp(mean cross-entropy) computed directly, whatever the
batch size; a stride shorter than the window scores each token once, with more context."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmos.data.labelled import DataError
from llmos.errors import LLMOSError
from llmos.evaluation.perplexity import evaluate_perplexity, perplexity_of_ids, window_spans


def direct_nll(model, ids: list[int]) -> tuple[float, int]:
    """Sum of -log p(ids[t+1] | ids[:t+1]) over one forward pass, and the number of terms."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    return float(F.cross_entropy(logits[:-1].float(), torch.tensor(ids[1:]), reduction="sum")), len(ids) - 1


def test_a_text_within_the_context_gives_exp_of_the_mean_cross_entropy(tmp_path, causal_checkpoint):
    _, model, tokenizer = causal_checkpoint
    text = "the cat sat on the mat . paris is nice"
    (tmp_path / "a.txt").write_text(text)
    result = evaluate_perplexity(model, tokenizer, tmp_path / "a.txt")
    ids = tokenizer.encode(text)
    nll, n = direct_nll(model, ids)
    assert result["metrics"]["tokens"] == n and result["n_examples"] == 1
    assert result["metrics"]["loss"] == pytest.approx(nll / n, rel=1e-5)
    assert result["metrics"]["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-5)


def test_disjoint_windows_are_token_weighted_and_batch_size_does_not_matter(causal_checkpoint):
    _, model, _ = causal_checkpoint
    torch.manual_seed(3)
    ids = torch.randint(0, 300, (150,)).tolist()  # windows of 64, 64 and 22 tokens
    total, count = 0.0, 0
    for begin in range(0, 150, 64):
        nll, n = direct_nll(model, ids[begin:begin + 64])
        total, count = total + nll, count + n
    for batch_size in (1, 2, 8):
        result = perplexity_of_ids(model, ids, batch_size=batch_size)
        assert result["windows"] == 3 and result["tokens"] == count
        assert result["loss"] == pytest.approx(total / count, rel=1e-5)
        assert result["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-5)


def test_a_shorter_stride_scores_every_token_after_the_first_exactly_once(causal_checkpoint):
    _, model, _ = causal_checkpoint
    spans = window_spans(100, window=40, stride=16)
    scored = [t for begin, end, n in spans for t in range(end - n, end)]
    assert scored == list(range(1, 100))
    assert all(n <= end - begin - 1 for begin, end, n in spans)
    torch.manual_seed(4)
    ids = torch.randint(0, 300, (100,)).tolist()
    expected_total = 0.0
    for begin, end, n in spans:  # each window's last n predictions, computed directly
        with torch.no_grad():
            logits = model(torch.tensor([ids[begin:end]])).logits[0]
        losses = F.cross_entropy(logits[:-1].float(), torch.tensor(ids[begin + 1:end]), reduction="none")
        expected_total += float(losses[-n:].sum())
    result = perplexity_of_ids(model, ids, window=40, stride=16, batch_size=3)
    assert result["tokens"] == 99
    assert result["loss"] == pytest.approx(expected_total / 99, rel=1e-5)


def test_bad_windows_and_files_are_clear_errors(tmp_path, causal_checkpoint):
    _, model, tokenizer = causal_checkpoint
    with pytest.raises(LLMOSError, match=r"window=65 must be in 2..64"):
        perplexity_of_ids(model, [1, 2, 3], window=65)
    with pytest.raises(LLMOSError, match=r"stride=20 must be in 1..window \(10\)"):
        perplexity_of_ids(model, [1, 2, 3], window=10, stride=20)
    with pytest.raises(LLMOSError, match="at least 2 tokens"):
        perplexity_of_ids(model, [1])
    (tmp_path / "empty.txt").write_text(" \n")
    with pytest.raises(DataError, match="empty.txt: the file is empty"):
        evaluate_perplexity(model, tokenizer, tmp_path / "empty.txt")
