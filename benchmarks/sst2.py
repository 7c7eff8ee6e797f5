"""SST-2 sentiment: TF-IDF, a from-scratch LLMOS encoder, SmolLM2 zero-shot and SmolLM2 + LoRA, in one run.

The last 2,000 rows of the training file are the validation split (the official dev
split is not in ../shared); everything trains on the rows before them. SST-2's training
file holds every phrase of each parsed review sentence, so about 89% of those validation
rows occur word for word inside a training row, which favours n-gram memory (TF-IDF gets
~93% there). `--val-split unseen` holds out the last 2,000 whole sentences instead and
drops every training row found inside one of them (TF-IDF ~82%, about its figure on the
official dev split). `--eval-file` takes any other `label<TAB>sentence` file (labels 0/1
or negative/positive) and reports its accuracy too. Rows, each with accuracy, trainable
parameters and wall time:

- tfidf: TF-IDF word 1-2 grams + logistic regression (scikit-learn), C chosen by 3-fold
  cross-validation on the training rows only;
- encoder: a small BERT-style encoder (RoPE, pre-norm) pretrained from scratch with
  masked LM + NSP on the training sentences (`llmos.data.prepare` with a WordPiece
  tokenizer, then `llmos.training.run.pretrain`), then fine-tuned as a classifier with
  `llmos.training.finetune.finetune` twice: freeze-N (embeddings and the lowest N blocks
  frozen) and full;
- zeroshot: SmolLM2-135M-Instruct, no training: the sentiment pipeline as shipped
  (`pipeline("sentiment-analysis")`): the question "positive or negative?", the reply
  started as "The sentiment of this text is", the label words' probabilities as the next
  word, calibrated by the prior of content-free inputs. That prompt and calibration were
  chosen on training sentences only (benchmarks/sentiment_prompts.py: none of the validation
  rows of either split); the shared prompt prefix is computed once per batch and kept in the KV cache;
- lora: SmolLM2 + LoRA adapters and a classification head, `finetune(method="lora")`.

Every training run is time-budgeted (`--*-minutes`). So that the learning rate still
decays to its floor within the budget, each run first trains a few warmup steps, reads
the measured seconds per step from the run's metrics.jsonl, and resumes (the trainer's
exact resume) with max_steps set to what fits in the rest of the budget; `max_minutes`
stays as a hard cap. The checkpoint evaluated is `last` (not the one with the best
validation loss: that would pick the checkpoint on the split we report). Training runs
under bfloat16 autocast where the CPU has native bf16 (`--dtype auto`), else float32;
evaluation in float32.

Our goals: the encoder beats TF-IDF by 3 points within 15 minutes (pretraining,
both fine-tunes and their evaluations together) on 2 cores; SmolLM2 + LoRA reaches 88%
within 20 minutes.

    .venv/bin/python benchmarks/sst2.py [--train PATH] [--eval-file FILE] [--json PATH]
        [--val-split last|unseen] [--rows tfidf,encoder,zeroshot,lora]
        [--encoder-pretrain-minutes 9] [--encoder-finetune-minutes 2.5] [--lora-minutes 20]
        [--zero-shot-limit 2000] [--out DIR]

A smoke run (a couple of minutes):

    .venv/bin/python benchmarks/sst2.py --max-train-rows 2000 --val-rows 200 --zero-shot-limit 20 \\
        --encoder-pretrain-minutes 0.1 --encoder-finetune-minutes 0.1 --lora-minutes 0.1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

DEFAULT_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "train.tsv"
ROWS = ("tfidf", "encoder", "zeroshot", "lora")
LABELS = ["negative", "positive"]  # SST-2: label 0 is negative, 1 positive
# The encoder: bert-mini-mlm.yaml's shape (RoPE and pre-norm leave the MLM plateau sooner at this budget).
ENCODER = {"d_model": 256, "n_layers": 4, "n_heads": 4, "d_ff": 1024, "max_seq_len": 128,
           "position": "rope", "norm_placement": "pre", "final_norm": True}
PARAGRAPH_CHARS = 240  # sentences per pretraining document: about one 64-token context each


# ---- data ---------------------------------------------------------------------------------


def whole_sentence_test(texts: list[str]) -> Callable[[int], bool]:
    """A test of row i: whether it is a whole sentence (no longer row of `texts` contains it, whole
    words). SST-2's training file holds every phrase of each parsed sentence as its own row."""
    wrapped = [f" {t} " for t in texts]  # whole-word matches only
    by_length = sorted(range(len(texts)), key=lambda i: -len(wrapped[i]))
    joined = "\n".join(wrapped[i] for i in by_length)
    ends, end = {}, 0  # for each length: where the rows strictly longer than it end in `joined`
    for i in by_length:
        ends.setdefault(len(wrapped[i]), end)
        end += len(wrapped[i]) + 1
    return lambda i: joined.find(wrapped[i], 0, ends[len(wrapped[i])]) < 0


def split_rows(texts: list[str], n_val: int, mode: str) -> tuple[list[int], list[int]]:
    """(training row indices, validation row indices) of the file's rows.

    "last" (the default): the last n_val rows. SST-2's training file holds every phrase of
    each parsed review sentence, so most of those rows also occur inside training rows.
    "unseen": the last n_val rows that are whole sentences (no longer row contains them), and
    training drops every row found inside one of them: no validation text, not even part of one,
    is seen in training (like the official dev split, which is whole unseen sentences)."""
    if mode == "last":
        return list(range(len(texts) - n_val)), list(range(len(texts) - n_val, len(texts)))
    is_whole = whole_sentence_test(texts)
    val: list[int] = []
    for i in range(len(texts) - 1, -1, -1):
        if is_whole(i):
            val.append(i)
            if len(val) == n_val:
                break
    wrapped = [f" {t} " for t in texts]
    held = "\n".join(wrapped[i] for i in val)
    chosen = set(val)
    return [i for i in range(len(texts)) if i not in chosen and wrapped[i] not in held], sorted(val)


def seen_in_training(train: list[str], val: list[str]) -> int:
    """How many validation texts occur (whole words) inside some training text."""
    joined = "\n".join(f" {t} " for t in train)
    return sum(f" {t} " in joined for t in val)


def write_tsv(path: Path, texts: list[str], labels: list[int]) -> Path:
    """A labelled file `read_labelled` (and so `finetune`) reads: a header, then label<TAB>sentence."""
    lines = ["label\tsentence"] + [f"{LABELS[y]}\t{t}" for t, y in zip(texts, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_corpus(path: Path, texts: list[str]) -> Path:
    """One sentence per line; a blank line closes each run of sentences of about PARAGRAPH_CHARS
    characters, so that with max_document_chars=1 `prepare` makes each run one document, which
    fills about one context (a document per sentence would leave most of each row padding)."""
    lines, size = [], 0
    for text in texts:
        if size and size + len(text) > PARAGRAPH_CHARS:
            lines.append("")
            size = 0
        lines.append(text)
        size += len(text) + 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- time budgets -------------------------------------------------------------------------


def budgeted(train: Callable[[Any], Any], config: Any, minutes: float, probe_steps: int,
             report: Callable[[str], None]) -> Any:
    """Run `train(config)` within `minutes`, with the cosine schedule spanning about that time.

    First `probe_steps` steps (inside the warmup, whose rates do not depend on max_steps),
    then max_steps from the measured seconds per step, resumed from the probe's checkpoint."""
    probe = config.with_overrides({"max_steps": 10**7, "stop_at_step": probe_steps, "max_minutes": minutes,
                                   "log_every": max(1, probe_steps // 4)})
    first = train(probe)
    if first.steps < probe_steps:  # the budget ran out during the probe
        return first
    from llmos.training.metrics import read_metrics

    logged = [r for r in read_metrics(Path(config.out_dir) / "metrics.jsonl") if r.get("kind") == "train"]
    (step0, t0), (step1, t1) = [(r["step"], r["elapsed"]) for r in (logged[0], logged[-1])]
    per_step = (t1 - t0) / max(1, step1 - step0)
    spent = first.seconds
    max_steps = max(probe_steps + 1, probe_steps + int(0.97 * (60 * minutes - spent) / per_step))
    report(f"  {per_step * 1000:.0f} ms/step over steps {step0}-{step1}: max_steps {max_steps}")
    return train(config.with_overrides({"max_steps": max_steps, "max_minutes": minutes, "resume": "auto",
                                        "eval_every": 0}))


class Captured:
    """The report callback of `finetune`: prints each line and keeps the trainable-parameter count."""

    def __init__(self) -> None:
        self.trainable = self.total = 0

    def __call__(self, line: str) -> None:
        print(f"  {line}", flush=True)
        found = re.search(r"training ([\d,]+) of ([\d,]+) parameters", line)
        if found:
            self.trainable, self.total = (int(g.replace(",", "")) for g in found.groups())


# ---- rows ---------------------------------------------------------------------------------


def tfidf_row(train, evals: dict[str, Any]) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+")
    features = vectorizer.fit_transform(train.texts)
    search = GridSearchCV(LogisticRegression(max_iter=2000), {"C": [1, 2, 4, 8, 16, 32, 64]}, cv=3)
    classifier = search.fit(features, train.labels).best_estimator_
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    accuracy = {name: float((classifier.predict(vectorizer.transform(d.texts)) == d.labels).mean())
                for name, d in evals.items()}
    return {"name": "TF-IDF 1-2 grams + logistic regression", "accuracy": accuracy,
            "trainable": int(classifier.coef_.size + classifier.intercept_.size),
            "train_seconds": train_seconds, "eval_seconds": time.perf_counter() - start,
            "notes": f"{features.shape[1]:,} features, C={classifier.C:g} (3-fold CV on train)"}


def evaluate(run_dir: Path, files: dict[str, Path], quantize: str | None = None) -> tuple[dict[str, float], float]:
    """Accuracy of the classifier saved in `run_dir` on each labelled file, and the seconds it took."""
    from llmos.data.labelled import LabelledData, read_labelled
    from llmos.evaluation.classification import evaluate_classification, model_label_names
    from llmos.evaluation.loading import load_classifier, load_tokenizer

    start = time.perf_counter()
    model, tokenizer = load_classifier(run_dir, quantize=quantize), load_tokenizer(run_dir)
    accuracy = {}
    for name, path in files.items():
        data = read_labelled(path, model_label_names(model.config))
        order = sorted(range(len(data)), key=lambda i: len(data.texts[i]))  # batches of like lengths: less padding
        data = LabelledData([data.texts[i] for i in order], [data.labels[i] for i in order], data.label_names,
                            data.source)
        accuracy[name] = evaluate_classification(model, tokenizer, data, batch_size=32)["metrics"]["accuracy"]
    return accuracy, time.perf_counter() - start


def encoder_rows(args, work: Path, train_texts: list[str], files: dict[str, Path]) -> list[dict[str, Any]]:
    from llmos.data import prepare
    from llmos.training import TrainConfig
    from llmos.training.finetune import finetune
    from llmos.training.finetune_recipe import FinetuneConfig
    from llmos.training.run import pretrain

    start = time.perf_counter()
    corpus = write_corpus(work / "corpus" / "sst2_train_sentences.txt", train_texts)
    summary = prepare(corpus, work / "encoder_data", tokenizer_kind="wordpiece", vocab_size=args.encoder_vocab,
                      max_document_chars=1, val_fraction=0.02, seed=args.seed, progress=False)
    print(f"  {summary.line()}", flush=True)
    config = TrainConfig(out_dir=str(work / "encoder_pretrain"), data_dir=str(work / "encoder_data"),
                         objective="mlm_nsp", model="bert-base", model_overrides=dict(ENCODER), context=64,
                         batch_size=32, lr=1e-3, min_lr=5e-5, warmup_steps=100, weight_decay=0.01,
                         eval_every=0, eval_batches=10, seed=args.seed, dtype=args.dtype, progress=False)
    result = budgeted(pretrain, config, args.encoder_pretrain_minutes, 40, lambda s: print(s, flush=True))
    pretrain_seconds = time.perf_counter() - start
    final = result.final_eval
    print(f"  pretrained {result.steps} steps in {pretrain_seconds:.0f} s ({result.tokens_per_second:,.0f} "
          f"tokens/s): masked-token accuracy {final.get('val_mlm_accuracy', float('nan')):.1%}, "
          f"NSP accuracy {final.get('val_nsp_accuracy', float('nan')):.1%}", flush=True)
    base = work / "encoder_pretrain" / "last"
    rows = []
    for method in ("freeze", "full"):
        name = f"LLMOS encoder, freeze-{args.freeze_layers}" if method == "freeze" else "LLMOS encoder, full"
        print(f"{name}: fine-tuning", flush=True)
        start = time.perf_counter()
        captured = Captured()
        ft = FinetuneConfig(base_model=str(base), data=str(files["train"]), val_data=str(files["validation"]),
                            task="classification", labels=",".join(LABELS), method=method,
                            freeze_layers=args.freeze_layers if method == "freeze" else 0,
                            out_dir=str(work / f"encoder_{method}"), context=64, batch_size=32,
                            lr=args.encoder_freeze_lr if method == "freeze" else args.encoder_full_lr,
                            min_lr=args.encoder_full_lr / 10, warmup_steps=60, weight_decay=0.01,
                            eval_every=0, eval_batches=8, seed=args.seed, dtype=args.dtype,
                            progress=False)
        result = budgeted(lambda c, captured=captured: finetune(c, report=captured), ft,
                          args.encoder_finetune_minutes, 30, lambda s: print(s, flush=True))
        train_seconds = time.perf_counter() - start
        accuracy, eval_seconds = evaluate(Path(ft.out_dir) / "last", {k: v for k, v in files.items() if k != "train"})
        rows.append({"name": name, "accuracy": accuracy, "trainable": captured.trainable,
                     "train_seconds": train_seconds, "eval_seconds": eval_seconds,
                     "pretrain_seconds": pretrain_seconds,
                     "notes": f"{result.steps} steps, lr {ft.lr:g}; + {pretrain_seconds:.0f} s MLM+NSP "
                              f"pretraining ({captured.total:,} parameters)"})
    return rows


def zero_shot_labels(model, tokenizer, texts: list[str]) -> list[str]:
    """The sentiment pipeline's zero-shot labels, in batches of 16: its default prompt, answer start and
    calibration, chosen on training rows only (benchmarks/sentiment_prompts.py)."""
    from llmos import pipeline

    classify = pipeline("sentiment-analysis", model=model, tokenizer=tokenizer, batch_size=16)
    return [r["label"] for r in classify(texts)]


def zero_shot_row(args, evals: dict[str, Any]) -> dict[str, Any]:
    from llmos import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    # the GGUF's values dequantized once: the same weights the LoRA row starts from, and faster on
    # batched prompts than the int4 kernel's per-call dequantization
    model = AutoModelForCausalLM.from_pretrained("smollm2", quantize="none")
    tokenizer = AutoTokenizer.from_pretrained("smollm2")
    load_seconds = time.perf_counter() - start
    accuracy, positive, counts = {}, {}, {}
    start = time.perf_counter()
    for name, data in evals.items():
        data = data.head(args.zero_shot_limit)
        predicted = torch.tensor([LABELS.index(label) for label in zero_shot_labels(model, tokenizer, data.texts)])
        accuracy[name] = float((predicted == torch.tensor(data.labels)).float().mean())
        positive[name], counts[name] = float(predicted.float().mean()), len(data)
    seconds = time.perf_counter() - start
    total = sum(p.numel() for p in model.parameters())
    return {"name": "SmolLM2-135M-Instruct zero-shot", "accuracy": accuracy, "trainable": 0,
            "train_seconds": 0.0, "eval_seconds": seconds + load_seconds, "examples": counts,
            "predicted_positive": positive,
            "notes": f"the sentiment pipeline (calibrated); {', '.join(f'{k} first {v:,} rows' for k, v in counts.items())}; "
                     f"{seconds / max(1, sum(counts.values())) * 1000:.0f} ms/sentence; "
                     f"predicts positive {positive.get('validation', 0):.0%}; {total:,} parameters"}


def lora_row(args, work: Path, files: dict[str, Path]) -> dict[str, Any]:
    from llmos.training.finetune import finetune
    from llmos.training.finetune_recipe import FinetuneConfig

    start = time.perf_counter()
    captured = Captured()
    config = FinetuneConfig(base_model="smollm2", data=str(files["train"]), val_data=str(files["validation"]),
                            task="classification", labels=",".join(LABELS), method="lora", lora_r=args.lora_r,
                            lora_alpha=2.0 * args.lora_r, lora_targets=args.lora_targets,
                            out_dir=str(work / "lora"), context=64, batch_size=16, lr=args.lora_lr,
                            min_lr=args.lora_lr / 10, warmup_steps=30, eval_every=0, eval_batches=4,
                            seed=args.seed, dtype=args.dtype, progress=False)
    result = budgeted(lambda c: finetune(c, report=captured), config, args.lora_minutes, 16,
                      lambda s: print(s, flush=True))
    train_seconds = time.perf_counter() - start
    accuracy, eval_seconds = evaluate(Path(config.out_dir) / "last", {k: v for k, v in files.items() if k != "train"},
                                      quantize="none")
    return {"name": f"SmolLM2 + LoRA r={args.lora_r} ({args.lora_targets}) + head", "accuracy": accuracy,
            "trainable": captured.trainable, "train_seconds": train_seconds, "eval_seconds": eval_seconds,
            "notes": f"{result.steps} steps of 16, lr {args.lora_lr:g} ({captured.total:,} parameters)"}


# ---- report -------------------------------------------------------------------------------


def print_table(rows: list[dict[str, Any]], eval_name: str | None) -> None:
    base = next((r["accuracy"]["validation"] for r in rows if r["name"].startswith("TF-IDF")), None)
    header = f"{'row':44} {'val acc':>8}" + (f" {'eval acc':>9}" if eval_name else "") + \
             f" {'vs TF-IDF':>10} {'trainable':>12} {'train s':>8} {'eval s':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        acc = r["accuracy"]["validation"]
        line = f"{r['name'][:44]:44} {acc:>8.2%}"
        if eval_name:
            line += f" {r['accuracy'].get('eval', float('nan')):>9.2%}"
        line += f" {(acc - base) * 100:>+9.1f}p" if base is not None else f" {'':>10}"
        line += f" {r['trainable']:>12,} {r['train_seconds']:>8.0f} {r['eval_seconds']:>7.0f}"
        print(line)
    for r in rows:
        print(f"  {r['name']}: {r['notes']}")
    encoders = [r for r in rows if r["name"].startswith("LLMOS encoder")]
    if encoders:
        total = encoders[0]["pretrain_seconds"] + sum(r["train_seconds"] + r["eval_seconds"] for r in encoders)
        best = max(encoders, key=lambda r: r["accuracy"]["validation"])
        gap = f" ({(best['accuracy']['validation'] - base) * 100:+.1f} points over TF-IDF)" if base is not None else ""
        print(f"our goal, encoder beats TF-IDF by 3 points within 15 min: best {best['name']} "
              f"{best['accuracy']['validation']:.2%}{gap}; pretraining + both fine-tunes + evaluations "
              f"{total / 60:.1f} min")
    for r in rows:
        if r["name"].startswith("SmolLM2 + LoRA"):
            print(f"our goal, SmolLM2 + LoRA reaches 88% within 20 min: {r['accuracy']['validation']:.2%} after "
                  f"{r['train_seconds'] / 60:.1f} min of training (+{r['eval_seconds'] / 60:.1f} min evaluating)")


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX), from /proc/cpuinfo's flags."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, default=DEFAULT_TRAIN, help="label<TAB>sentence, header included")
    parser.add_argument("--eval-file", type=Path, default=None, help="another labelled file to report")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {','.join(ROWS)}")
    parser.add_argument("--val-rows", type=int, default=2000, help="the last this many rows of --train")
    parser.add_argument("--val-split", choices=("last", "unseen"), default="last",
                        help="last: the last rows (the default); unseen: the last whole sentences, their "
                             "phrases dropped from training (see split_rows)")
    parser.add_argument("--max-train-rows", type=int, default=0, help="train on the first N rows only (0 = all)")
    parser.add_argument("--encoder-pretrain-minutes", type=float, default=9.0)
    parser.add_argument("--encoder-finetune-minutes", type=float, default=2.5, help="each of freeze-N and full")
    parser.add_argument("--encoder-vocab", type=int, default=8192)
    parser.add_argument("--encoder-full-lr", type=float, default=2e-4)
    parser.add_argument("--encoder-freeze-lr", type=float, default=5e-4)
    parser.add_argument("--freeze-layers", type=int, default=2, help="freeze-N: embeddings + the lowest N of 4")
    parser.add_argument("--zero-shot-limit", type=int, default=2000, help="score the first N rows of each split")
    parser.add_argument("--lora-minutes", type=float, default=20.0)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-targets", default="all-linear")
    parser.add_argument("--lora-lr", type=float, default=5e-4)
    parser.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), default="auto",
                        help="training autocast; auto = bfloat16 on a CPU with AVX512-BF16 or AMX (about 1.5x "
                             "faster there), float32 elsewhere (bf16 matmuls are many times slower on AVX2 only); "
                             "evaluation runs in float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if args.dtype == "auto":
        args.dtype = "bfloat16" if cpu_has_bf16() else "float32"
    rows_wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(rows_wanted) - set(ROWS))
    if unknown:
        parser.error(f"--rows {unknown} not known; choose from {','.join(ROWS)}")
    if not args.train.is_file():
        raise SystemExit(f"no data at {args.train}; pass --train PATH to SST-2's train.tsv")
    if args.eval_file is not None and not args.eval_file.is_file():
        raise SystemExit(f"no file at {args.eval_file} (--eval-file)")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("RAYON_NUM_THREADS", str(args.threads))

    from llmos.data.labelled import read_labelled

    data = read_labelled(args.train, LABELS)
    if len(data) <= args.val_rows:
        raise SystemExit(f"{args.train} has {len(data)} rows; need more than --val-rows {args.val_rows}")
    train_rows, val_rows = split_rows(data.texts, args.val_rows, args.val_split)
    if len(val_rows) < args.val_rows:
        raise SystemExit(f"{args.train}: only {len(val_rows)} whole sentences for --val-split unseen")
    if args.max_train_rows:
        train_rows = train_rows[:args.max_train_rows]
    train_texts, val_texts = [data.texts[i] for i in train_rows], [data.texts[i] for i in val_rows]
    seen = seen_in_training(train_texts, val_texts)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        (work / "corpus").mkdir(parents=True, exist_ok=True)
        files = {"train": write_tsv(work / "train.tsv", train_texts, [data.labels[i] for i in train_rows]),
                 "validation": write_tsv(work / "validation.tsv", val_texts, [data.labels[i] for i in val_rows])}
        if args.eval_file is not None:
            files["eval"] = args.eval_file
        splits = {name: read_labelled(path, LABELS) for name, path in files.items()}
        what = "rows" if args.val_split == "last" else "whole sentences, their phrases dropped from training"
        print(f"SST-2: train {len(splits['train']):,} rows, validation {len(splits['validation']):,} (the last "
              f"{args.val_rows:,} {what}; {seen:,} of them occur inside a training row)"
              + (f", eval {len(splits['eval']):,} ({args.eval_file})" if "eval" in splits else "")
              + f"; {torch.get_num_threads()} threads, training in {args.dtype}", flush=True)
        evals = {k: v for k, v in splits.items() if k != "train"}
        rows: list[dict[str, Any]] = []
        for row in rows_wanted:
            print(f"{row}:", flush=True)
            if row == "tfidf":
                new = [tfidf_row(splits["train"], evals)]
            elif row == "encoder":
                new = encoder_rows(args, work, train_texts, files)
            elif row == "zeroshot":
                new = [zero_shot_row(args, evals)]
            else:
                new = [lora_row(args, work, files)]
            for r in new:
                print(f"  {r['name']}: validation accuracy {r['accuracy']['validation']:.2%} "
                      f"({r['train_seconds']:.0f} s training, {r['eval_seconds']:.0f} s evaluating)", flush=True)
            rows.extend(new)
    print_table(rows, "eval" if args.eval_file is not None else None)
    if args.json is not None:
        args.json.write_text(json.dumps({"train": str(args.train), "train_rows": len(train_texts),
                                         "val_rows": len(val_texts), "val_split": args.val_split,
                                         "val_rows_seen_in_training": seen, "dtype": args.dtype,
                                         "eval_file": str(args.eval_file) if args.eval_file else None,
                                         "threads": torch.get_num_threads(), "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
