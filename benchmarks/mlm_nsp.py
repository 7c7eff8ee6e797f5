"""BERT-style pretraining (masked LM + next-sentence prediction) of a small encoder.

Prepares a corpus (default: the shared Tiny Shakespeare; WordPiece vocabulary,
3,000-character documents, 5% of them held out), trains it with a recipe
(default recipes/bert-mini-mlm.yaml) through `llmos.training.pretrain`, and
reports validation masked-token accuracy and NSP accuracy at every evaluation
next to the baselines that say what "above chance" means here:

- masked tokens: uniform chance 1/V, and the unigram baseline (always predict
  the most frequent training token), which every model passes on its way out of
  the early loss plateau;
- NSP: 50% (and the majority label of the validation pairs), and a bigram test
  that only looks at the two tokens around the first [SEP] (is the first token
  of B a likely successor of the last token of A?), thresholded at its best.

    python benchmarks/mlm_nsp.py [--data FILE_OR_DIR] [--recipe recipes/x.yaml] [--max-steps N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from llmos.data import MLMNSPBatches, TokenShards, prepare
from llmos.model.heads import IGNORE_INDEX
from llmos.training import TrainConfig
from llmos.training.run import pretrain


def baselines(data_dir: Path, config: TrainConfig) -> dict[str, float]:
    """Unigram MLM accuracy, NSP majority and bigram-boundary NSP accuracy on the eval batches."""
    train, val = TokenShards(data_dir, "train"), TokenShards(data_dir, "val")
    tokens = train.window(0, train.num_tokens).astype(np.int64)
    vocab = train.vocab_size
    batches = MLMNSPBatches(val, config.batch_size, config.context, seed=config.seed + 1,
                            mlm_probability=config.mlm_probability)  # the trainer's eval batches
    never = np.fromiter(batches.special.never_masked(), dtype=np.int64)
    counts = np.bincount(tokens, minlength=vocab).astype(np.float64)
    counts[never[never < vocab]] = 0
    most_frequent = int(counts.argmax())
    pairs = np.zeros((vocab, vocab))
    np.add.at(pairs, (tokens[:-1], tokens[1:]), 1)
    pairs += 0.1
    surprise = np.log(pairs / pairs.sum(1, keepdims=True)) - np.log((counts + 1) / (counts + 1).sum())
    hits = masked = 0
    scores, labels = [], []
    for _ in range(config.eval_batches):
        batch = next(batches)
        targets = batch["labels"].numpy()
        hits += int((targets == most_frequent).sum())
        masked += int((targets != IGNORE_INDEX).sum())
        original = np.where(targets != IGNORE_INDEX, targets, batch["input_ids"].numpy())
        for row, types in zip(original, batch["token_type_ids"].numpy(), strict=True):
            first_b = int(np.flatnonzero(types == 1)[0])  # A ends at first_b - 2, [SEP] between
            scores.append(surprise[row[first_b - 2], row[first_b]])
        labels.extend(batch["next_sentence_label"].tolist())
    scores, is_next = np.array(scores), np.array(labels) == 0
    bigram = max(((scores > t) == is_next).mean() for t in np.quantile(scores, np.linspace(0.02, 0.98, 97)))
    return {"uniform": 1.0 / vocab, "unigram": hits / masked,
            "nsp_majority": max(is_next.mean(), 1 - is_next.mean()), "nsp_bigram": float(bigram)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"))
    parser.add_argument("--recipe", default=str(Path(__file__).parents[1] / "recipes" / "bert-mini-mlm.yaml"))
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--max-steps", type=int, default=0, help="override the recipe's max_steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="", help="keep the run here (default: a temporary directory)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not Path(args.data).exists():
        raise SystemExit(f"no data at {args.data}; pass --data PATH (a .txt/.jsonl file or a folder)")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        summary = prepare(args.data, data_dir, tokenizer_kind="wordpiece", vocab_size=args.vocab_size,
                          max_document_chars=3000, val_fraction=0.05, progress=False)
        print(f"data: {summary}", flush=True)
        overrides = {"data_dir": str(data_dir), "out_dir": args.out or str(Path(tmp) / "run"), "progress": False}
        if args.max_steps:
            overrides["max_steps"] = args.max_steps
        config = TrainConfig.from_yaml(args.recipe).with_overrides(overrides)
        base = baselines(data_dir, config)
        start = time.perf_counter()
        result = pretrain(config)
        seconds = time.perf_counter() - start
    print(f"recipe {args.recipe}: {result.steps} steps in {seconds:.0f} s, "
          f"{result.tokens_per_second:,.0f} tokens/s, MFU {result.mfu:.1%}")
    print(f"{'step':>6} {'MLM loss':>9} {'MLM acc':>8} {'NSP loss':>9} {'NSP acc':>8}")
    for r in result.evals:
        print(f"{r['step']:>6} {r['val_mlm_loss']:>9.3f} {r['val_mlm_accuracy']:>8.1%} "
              f"{r['val_nsp_loss']:>9.3f} {r['val_nsp_accuracy']:>8.1%}")
    final = result.final_eval
    print(f"masked-token accuracy {final['val_mlm_accuracy']:.1%}: uniform chance {base['uniform']:.2%}, "
          f"unigram baseline {base['unigram']:.1%}")
    print(f"NSP accuracy {final['val_nsp_accuracy']:.1%}: chance 50%, majority label "
          f"{base['nsp_majority']:.1%}, bigram-at-the-boundary test {base['nsp_bigram']:.1%}")
    print(json.dumps({"seconds": round(seconds, 1), **{k: round(v, 4) for k, v in base.items()},
                      **{k: round(v, 4) for k, v in final.items() if k.startswith("val_")}}))


if __name__ == "__main__":
    main()
