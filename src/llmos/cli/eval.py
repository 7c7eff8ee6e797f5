"""Layer 9: `llmos eval MODEL --data FILE`: score a model on a data file and write a JSON report.

The task follows the file unless --task says otherwise (`evaluation.tasks`):
a .txt file is scored for perplexity (sliding windows of the model's context),
a labelled .tsv/.csv/.jsonl file for classification (accuracy, macro-F1,
per-label scores, confusion matrix; the model must be a trained classifier),
a .jsonl of prompts and references for generation (greedy; exact match, chrF,
ROUGE-L). A summary table goes to stdout, a progress bar to stderr when it is a
terminal, and the report to --report (default `runs/eval/<model>-<task>.json`);
classification also draws the confusion matrix (--confusion-png, default the
report's path with `-confusion.png`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from llmos.cli.console import progress_bar, warnings_as_lines
from llmos.errors import LLMOSError


def _prepare(task: str, model: str, data: Path, quantize: str, batch_size: int, max_examples: int | None,
             max_new_tokens: int, window: int | None, stride: int | None) -> tuple[str, Callable]:
    """Load what `task` needs and return (progress description, run(progress) -> result)."""
    if task == "classification":
        from llmos.data.labelled import read_labelled
        from llmos.evaluation.classification import evaluate_classification, model_label_names
        from llmos.evaluation.loading import load_classifier

        classifier = load_classifier(model, quantize=quantize)
        examples = read_labelled(data, label_names=model_label_names(classifier.model.config))
        return "classifying", lambda progress: evaluate_classification(
            classifier.model, classifier.tokenizer, examples, batch_size, max_examples, progress)
    from llmos.generation.loading import load_model

    loaded = load_model(model, quantize=quantize)
    lm, tokenizer = loaded.model, loaded.tokenizer
    if task == "perplexity":
        from llmos.evaluation.perplexity import evaluate_perplexity

        return "perplexity", lambda progress: evaluate_perplexity(lm, tokenizer, data, window, stride, batch_size,
                                                                  max_examples, progress)
    from llmos.evaluation.generation_tasks import evaluate_generation

    return "generating", lambda progress: evaluate_generation(lm, tokenizer, data, max_new_tokens, batch_size,
                                                              max_examples, progress)


def _summary(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"{report['task']}: {report['model']} on {report['data']}", markup=False, highlight=False)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report["metrics"].items():
        table.add_row(name, f"{value:,}" if isinstance(value, int) else f"{value:.4f}")
    table.add_row("windows" if report["task"] == "perplexity" else "examples", f"{report['n_examples']:,}")
    table.add_row("seconds", f"{report['seconds']:.1f}")
    if "per_label" in report:
        for name, scores in report["per_label"].items():
            table.add_row(f"{name}: P / R / F1 (n)", f"{scores['precision']:.3f} / {scores['recall']:.3f} / "
                                                      f"{scores['f1']:.3f} ({scores['support']})")
    console.print(table)


def eval_command(
    model: str = typer.Argument(..., help="Checkpoint directory (ours or a transformers one), GGUF file, "
                                          "or model name (smollm2)."),
    data: Path = typer.Option(..., "--data", help="Data file: .txt (perplexity), .tsv/.csv/.jsonl with labels "
                                                  "(classification), .jsonl with prompts (generation)."),
    task: str = typer.Option(None, help="perplexity | classification | generation (default: from the file)."),
    report: Path = typer.Option(None, help="Where to write the JSON report (default runs/eval/<model>-<task>.json)."),
    confusion_png: Path = typer.Option(None, help="Classification: where to draw the confusion matrix "
                                                  "(default: beside the report)."),
    max_new_tokens: int = typer.Option(64, help="Generation: new tokens per answer at most."),
    batch_size: int = typer.Option(8, help="Examples (or perplexity windows) per forward pass."),
    max_examples: int = typer.Option(None, help="Score only the first N examples (perplexity: windows)."),
    window: int = typer.Option(None, help="Perplexity: tokens per window (default: the model's context)."),
    stride: int = typer.Option(None, help="Perplexity: tokens between window starts (default: the window)."),
    quantize: str = typer.Option("auto", help="auto (as stored), none (float), int8 or int4 weight-only linears."),
) -> None:
    """Evaluate a model on a data file: perplexity, classification or generation scores, and a JSON report."""
    from llmos.evaluation.report import (
        build_report,
        default_report_path,
        plot_confusion,
        write_report,
    )
    from llmos.evaluation.tasks import check_task, infer_task

    for name, value in (("--batch-size", batch_size), ("--max-new-tokens", max_new_tokens),
                        ("--max-examples", max_examples)):
        if value is not None and value < 1:
            raise LLMOSError(f"{name} {value} must be at least 1")
    if not data.is_file():
        raise LLMOSError(f"--data {str(data)!r}: no such file")
    task = check_task(task) if task is not None else infer_task(data)
    if confusion_png is not None and task != "classification":
        raise LLMOSError(f"--confusion-png applies to classification; this is a {task} evaluation")
    report_path = report if report is not None else default_report_path(model, task)
    with warnings_as_lines():
        description, run = _prepare(task, model, data, quantize, batch_size, max_examples, max_new_tokens,
                                    window, stride)
        started = time.perf_counter()
        with progress_bar(description, sys.stderr.isatty()) as progress:
            result = run(progress)
        seconds = time.perf_counter() - started
    full = build_report(model, data, task, result, seconds)
    _summary(full)
    written = write_report(report_path, full)
    typer.echo(f"report: {written}")
    if task == "classification":
        png = confusion_png if confusion_png is not None else written.with_name(f"{written.stem}-confusion.png")
        plot_confusion(png, full["confusion_matrix"], full["label_names"], title=f"{model} on {data.name}")
        typer.echo(f"confusion matrix: {png}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
