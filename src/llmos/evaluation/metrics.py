"""Layer 6 (evaluation): the scores, as plain functions of predictions and references.

Classification scores are computed here with NumPy (accuracy, confusion
matrix, per-label precision/recall/F1, macro-F1 as scikit-learn defines them,
0 where a ratio has a zero denominator). Text-generation scores use the
reference implementations: chrF from `sacrebleu`, ROUGE-L from Google's
`rouge_score`. Those two are optional (`pip install "llmos[eval]"`) and
imported only when a generation task is scored.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmos.errors import LLMOSError

EVAL_EXTRA = 'pip install "llmos[eval]"'


def require(module: str, package: str) -> Any:
    """Import an optional scoring library, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise LLMOSError(f"scoring needs the {package!r} package, which is not installed; install it with: "
                         f"{EVAL_EXTRA}") from None


# ---- classification ------------------------------------------------------------------------


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_labels: int) -> np.ndarray:
    """(n_labels, n_labels) counts: row = true label, column = predicted label."""
    true, pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape:
        raise LLMOSError(f"{true.size} true labels but {pred.size} predictions; they must pair up")
    for name, ids in (("true label", true), ("prediction", pred)):
        bad = ids[(ids < 0) | (ids >= n_labels)]
        if bad.size:
            raise LLMOSError(f"{name} {int(bad[0])} is outside the label ids 0..{n_labels - 1}")
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=den > 0)


def classification_scores(y_true: Sequence[int], y_pred: Sequence[int], label_names: list[str]) -> dict[str, Any]:
    """accuracy, macro_f1 (mean F1 over every label of the set) and, per label, precision,
    recall, f1 and support; plus the confusion matrix as nested lists."""
    matrix = confusion_matrix(y_true, y_pred, len(label_names))
    hits = np.diag(matrix).astype(np.float64)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    precision, recall = _ratio(hits, predicted), _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    total = int(matrix.sum())
    return {
        "accuracy": float(hits.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()),
        "per_label": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": matrix.tolist(),
    }


# ---- text generation -----------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """Lowercase and collapse whitespace (punctuation is kept): what exact match compares."""
    return " ".join(text.lower().split())


def exact_match(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Fraction of predictions equal to any of their references after `normalize_answer`."""
    if not predictions:
        return 0.0
    hits = sum(normalize_answer(p) in {normalize_answer(r) for r in refs}
               for p, refs in zip(predictions, references, strict=True))
    return hits / len(predictions)


def chrf(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacrebleu's corpus-level chrF (0-100); examples may have different numbers of references."""
    sacrebleu_metrics = require("sacrebleu.metrics", "sacrebleu")
    width = max((len(refs) for refs in references), default=1)
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    return float(sacrebleu_metrics.CHRF().corpus_score(list(predictions), streams).score)


def rouge_l(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Mean ROUGE-L F-measure (0-1), the best over each example's references (`rouge_score`)."""
    rouge_scorer = require("rouge_score.rouge_scorer", "rouge-score")
    if not predictions:
        return 0.0
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    scores = [scorer.score_multi(list(refs), pred)["rougeL"].fmeasure
              for pred, refs in zip(predictions, references, strict=True)]
    return float(np.mean(scores))


def check_generation_scorers() -> None:
    """Fail early, with the install command, when chrF or ROUGE-L could not be computed."""
    require("sacrebleu.metrics", "sacrebleu")
    require("rouge_score.rouge_scorer", "rouge-score")


def generation_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    return {
        "exact_match": exact_match(predictions, references),
        "chrf": chrf(predictions, references),
        "rouge_l": rouge_l(predictions, references),
    }
