"""Generation speed: LLMOS against transformers.generate on the same random weights, one process.

Models: a GPT-2 124M shape and a Llama-shaped ~100M model with grouped-query
attention (preset llama-100m), fp32, torch.set_num_threads(2). For each row it
prints tokens/s for both and the ratio (LLMOS / transformers), plus the
batch-1 roofline: weight bytes read per token divided by the measured memory
bandwidth, and the fraction of it LLMOS reaches. Both sides produce the same
tokens on greedy rows (checked). Run:

    .venv/bin/python benchmarks/generate_vs_transformers.py            # everything
    .venv/bin/python benchmarks/generate_vs_transformers.py --models gpt2 --rows greedy \
        --new-tokens 32                                                  # a quick subset
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "generation"))
from pairs import gpt2_pair, llama_pair  # noqa: E402

from llmos.kernels import use_kernels  # noqa: E402

ROWS = ("greedy", "sample", "beam4", "greedy_b8", "ttft512")


def memory_bandwidth_gbs(size_mb: int = 512, repeats: int = 5) -> float:
    """Read bandwidth of a large-buffer sum with the benchmark's threads (GB/s)."""
    x = torch.ones(size_mb * 2**20 // 4)
    x.sum()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - t)
    return x.numel() * 4 / best / 1e9


def weight_bytes_per_token(model) -> int:
    """Bytes of weights a decode step reads: every matrix once (the token embedding is a lookup,
    unless tied to the LM head, which reads it whole)."""
    seen, total = set(), 0
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if name.endswith("embed.tokens.weight") and not model.config.tie_embeddings:
            continue
        if name.endswith("embed.positions.weight"):
            continue
        total += p.numel() * p.element_size()
    return total


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run_row(row: str, hf, ours, vocab: int, new_tokens: int, repeats: int) -> tuple[float, float, str]:
    g = torch.Generator().manual_seed(0)
    batch = 8 if row == "greedy_b8" else 1
    prompt_len = 512 if row == "ttft512" else 32
    ids = torch.randint(10, vocab, (batch, prompt_len), generator=g)
    mask = torch.ones_like(ids)
    n = 1 if row == "ttft512" else new_tokens
    kw = dict(max_new_tokens=n, min_new_tokens=n, eos_token_id=None)
    if row == "sample":
        kw.update(do_sample=True, top_k=50, top_p=0.95)
    elif row == "beam4":
        kw.update(num_beams=4)
    hf_kw = dict(kw, pad_token_id=0, do_sample=kw.get("do_sample", False))
    hf_kw.pop("eos_token_id")
    check = ""
    if row in ("greedy", "greedy_b8"):
        same = torch.equal(hf.generate(ids, attention_mask=mask, **hf_kw), ours.generate(ids, **kw))
        check = "same tokens" if same else "TOKENS DIFFER"
    with torch.inference_mode():
        t_hf = timed(lambda: hf.generate(ids, attention_mask=mask, **hf_kw), repeats)
        t_ours = timed(lambda: ours.generate(ids, **kw), repeats)
    if row == "ttft512":
        return t_hf, t_ours, check
    tokens = batch * n
    return tokens / t_hf, tokens / t_ours, check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gpt2,llama", help="comma list: gpt2,llama")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {ROWS}")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bandwidth = memory_bandwidth_gbs()
    print(f"torch {torch.__version__}, {args.threads} threads, measured read bandwidth {bandwidth:.1f} GB/s")
    print("what ran in this run: both libraries in this process, on the same random weights and prompts")
    print(f"{'model':8} {'row':10} {'transformers':>14} {'LLMOS':>14} {'ratio':>7}  note")
    for name in args.models.split(","):
        if name == "gpt2":
            hf, ours = gpt2_pair(vocab=50257, d_model=768, n_layers=12, n_heads=12, max_seq_len=1024, std=0.02)
        else:
            hf, ours = llama_pair(vocab=32000, d_model=768, n_layers=10, n_heads=12, n_kv_heads=4, d_ff=2048,
                                  max_seq_len=2048, std=0.02, rope_theta=500000.0)
        use_kernels(ours)
        vocab = ours.config.vocab_size
        roofline = bandwidth * 1e9 / weight_bytes_per_token(ours)
        greedy_ours = None
        for row in args.rows.split(","):
            a, b, note = run_row(row, hf, ours, vocab, args.new_tokens, args.repeats)
            if row == "ttft512":
                print(f"{name:8} {row:10} {a:12.3f} s {b:12.3f} s {a / b:6.2f}x  time to first token (lower is better)")
            else:
                print(f"{name:8} {row:10} {a:10.1f} t/s {b:10.1f} t/s {b / a:6.2f}x  {note}")
            if row == "greedy":
                greedy_ours = b
        line = f"{name:8} roofline   {roofline:10.1f} t/s (weights {weight_bytes_per_token(ours) / 1e6:.0f} MB/token)"
        if greedy_ours is not None:
            line += f"; LLMOS greedy batch 1 reaches {greedy_ours / roofline:.0%} of it"
        print(line)


if __name__ == "__main__":
    main()
