"""Benchmark: LLMOS data preparation and batching against the plain approaches they replace.

1. Tokenizing a corpus into shards: `llmos.data.prepare` (batched, parallel
   `encode_batch` inside `tokenizers`) vs a per-document `encode` loop writing
   the same uint16 stream (what most hand-written prepare scripts do). Both
   use the same tokenizer, and the script checks the token streams are equal.
2. Drawing causal-LM batches: `CausalBatches` (seeded permutation, exact
   resume) vs nanoGPT's `get_batch` (random offsets into a fresh np.memmap
   each call, no resume), batches per second.

Corpus: ../shared/data/tinyshakespeare.txt (beside the repository) when present, plus the Python
standard library's documentation (always available).

    .venv/bin/python benchmarks/data_pipeline.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from llmos.data import CausalBatches, TokenShards, prepare
from llmos.data.corpus import Corpus
from llmos.data.stdlib_corpus import build_stdlib_corpus
from llmos.tokenizer import train_tokenizer

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def naive_prepare(inputs: list[Path], tokenizer, out: Path) -> int:
    """The hand-written baseline: encode each document alone, append EOS, write uint16."""
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for text in Corpus(inputs):
        ids.extend(tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids)
        ids.append(eos)
    np.asarray(ids, dtype=np.uint16).tofile(out)
    return len(ids)


def nanogpt_get_batch(path: Path, batch_size: int, context: int) -> tuple[torch.Tensor, ...]:
    data = np.memmap(path, dtype=np.uint16, mode="r")
    ix = torch.randint(len(data) - context, (batch_size,))
    x = torch.stack([torch.from_numpy(data[i : i + context].astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + context].astype(np.int64)) for i in ix])
    return x, y


def main() -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = build_stdlib_corpus(tmp / "stdlib", max_bytes=4 << 20)
        if SHAKESPEARE.is_file():
            inputs.append(SHAKESPEARE)
        corpus_bytes = sum(p.stat().st_size for p in inputs)
        tokenizer = train_tokenizer(Corpus(inputs), kind="bpe", vocab_size=4096)

        start = time.perf_counter()
        n_naive = naive_prepare(inputs, tokenizer, tmp / "naive.bin")
        naive_s = time.perf_counter() - start
        start = time.perf_counter()
        prepare(inputs, tmp / "data", tokenizer=tokenizer, val_fraction=0.0, progress=False)
        ours_s = time.perf_counter() - start
        shards = TokenShards(tmp / "data")
        naive = np.fromfile(tmp / "naive.bin", dtype=np.uint16)
        same = shards.num_tokens == n_naive and np.array_equal(
            shards.window(0, shards.num_tokens), naive
        )

        batch_size, context, steps = 32, 256, 300
        batches = CausalBatches(shards, batch_size, context, seed=0)
        next(batches)
        start = time.perf_counter()
        for _ in range(steps):
            next(batches)
        ours_b = steps / (time.perf_counter() - start)
        shard_file = tmp / "data" / "train_000000.bin"
        nanogpt_get_batch(shard_file, batch_size, context)
        start = time.perf_counter()
        for _ in range(steps):
            nanogpt_get_batch(shard_file, batch_size, context)
        peer_b = steps / (time.perf_counter() - start)

    print(f"corpus: {len(inputs)} files, {corpus_bytes / 1e6:.1f} MB, {n_naive:,} tokens")
    print("what ran in this run: every column, in this process, on this corpus (peers: a per-document "
          "encode loop and nanoGPT's get_batch, as written here)")
    print(f"{'task':<34}{'llmos':>14}{'peer':>14}{'ratio':>8}")
    print(
        f"{'prepare, tokens/s (vs encode loop)':<34}{n_naive / ours_s:>14,.0f}"
        f"{n_naive / naive_s:>14,.0f}{naive_s / ours_s:>7.2f}x"
    )
    print(
        f"{'batches/s B=32 T=256 (vs nanoGPT)':<34}{ours_b:>14,.0f}{peer_b:>14,.0f}"
        f"{ours_b / peer_b:>7.2f}x"
    )
    print(f"identical token streams: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
