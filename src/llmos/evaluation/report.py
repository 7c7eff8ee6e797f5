"""Layer 6 (evaluation): the report of one evaluation run, as JSON and a confusion-matrix PNG.

A report is one JSON object: model, data, task, n_examples, seconds, metrics
(the headline numbers), plus what the task adds (per-label scores and the
confusion matrix, or every prediction). Without an explicit path it goes to
`runs/eval/<model label>-<task>.json` (the model label is a name, a GGUF
file's stem or a checkpoint directory's name). The PNG uses matplotlib's Agg
backend, so it needs no display.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmos.model_names import model_label

DEFAULT_REPORT_DIR = Path("runs/eval")


def default_report_path(model: str | Path, task: str) -> Path:
    return DEFAULT_REPORT_DIR / f"{model_label(model)}-{task}.json"


def build_report(model: str | Path, data: str | Path, task: str, result: dict[str, Any],
                 seconds: float) -> dict[str, Any]:
    """The report object: the run's identity first, then the task's result as returned."""
    extras = {k: v for k, v in result.items() if k not in ("n_examples", "metrics")}
    return {"model": str(model), "data": str(data), "task": task, "n_examples": result["n_examples"],
            "seconds": round(seconds, 3), "metrics": result["metrics"], **extras}


def write_report(path: str | Path, report: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def plot_confusion(path: str | Path, matrix: list[list[int]], label_names: list[str],
                   title: str | None = None) -> Path:
    """A heat map of the counts: rows are true labels, columns predictions, each cell labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(label_names)
    size = min(max(4.5, 0.6 * n + 2.5), 20)
    peak = max((max(row) for row in matrix), default=0)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(peak, 1))
    ax.set_xticks(range(n), labels=label_names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels=label_names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    if title:
        ax.set_title(title)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center",
                    color="white" if peak and count > peak / 2 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
