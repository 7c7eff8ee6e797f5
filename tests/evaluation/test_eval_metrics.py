"""The scores match their reference implementations: macro-F1, per-label scores and the confusion
matrix match scikit-learn's; chrF is sacrebleu's corpus chrF; ROUGE-L is rouge_score's."""

from __future__ import annotations

import numpy as np
import pytest
from sacrebleu import corpus_chrf
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion

from llmos.errors import LLMOSError
from llmos.evaluation.metrics import (
    chrf,
    classification_scores,
    confusion_matrix,
    exact_match,
    rouge_l,
)


def test_classification_scores_match_scikit_learn_including_a_never_predicted_label():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200).tolist()
    y_pred = [t if rng.random() < 0.6 else int(rng.integers(0, 3)) for t in y_true]  # label 3 never predicted
    names = ["a", "b", "c", "d"]
    scores = classification_scores(y_true, y_pred, names)
    labels = list(range(4))
    assert scores["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert scores["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", labels=labels,
                                                        zero_division=0))
    assert scores["confusion_matrix"] == sk_confusion(y_true, y_pred, labels=labels).tolist()
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for i, name in enumerate(names):
        got = scores["per_label"][name]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p[i], r[i], f[i]))
        assert got["support"] == s[i]


def test_confusion_matrix_rejects_ids_outside_the_label_set():
    with pytest.raises(LLMOSError, match="prediction 5 is outside the label ids 0..2"):
        confusion_matrix([0, 1], [0, 5], 3)


def test_exact_match_ignores_case_and_whitespace_and_takes_any_reference():
    predictions = ["  Paris ", "the   Cat sat", "dog", "Rome."]
    references = [["paris"], ["a cat", "The cat SAT"], ["cat"], ["Rome"]]
    assert exact_match(predictions, references) == 0.5


def test_chrf_is_sacrebleus_corpus_chrf_also_with_uneven_reference_counts():
    predictions = ["the cat sat on the mat", "a dog ran", "hello there"]
    single = [["the cat is on the mat"], ["the dog ran away"], ["hello"]]
    assert chrf(predictions, single) == pytest.approx(corpus_chrf(predictions, [[r[0] for r in single]]).score)
    uneven = [["the cat is on the mat", "a cat sat on a mat"], ["the dog ran away"], ["hello", "hi there"]]
    expected = corpus_chrf(predictions, [[r[0] for r in uneven], ["a cat sat on a mat", None, "hi there"]]).score
    assert chrf(predictions, uneven) == pytest.approx(expected)


def test_rouge_l_is_the_mean_of_rouge_scores_best_f_measure():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    predictions = ["the cat sat on the mat", "a dog ran"]
    references = [["the cat is on the mat"], ["the dog ran away", "a dog ran"]]
    expected = (scorer.score("the cat is on the mat", predictions[0])["rougeL"].fmeasure + 1.0) / 2
    assert rouge_l(predictions, references) == pytest.approx(expected)


def test_a_missing_scoring_package_names_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sacrebleu.metrics", None)  # import now raises ImportError
    with pytest.raises(LLMOSError, match=r'pip install "llmos\[eval\]"'):
        chrf(["a"], [["a"]])
