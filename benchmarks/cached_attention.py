"""A decode step's attention over a KV cache: LLMOS's C++ kernel (per code path) against SDPA, one process.

SmolLM2-135M's shapes: one query of 9 heads over 3 key/value heads of 64, float32, over a cache of
--columns columns of which the mask lets the first --open fraction through (a cache sized for the
whole reply is mostly unwritten while it is generated). Microseconds per layer call, best of
--repeats bursts, at 1 and 2 threads; kernels are timed round-robin (a shared host drifts). The
peer is `torch.nn.functional.scaled_dot_product_attention` with a boolean mask and `enable_gqa`,
what a layer calls without the kernel. Run:

    .venv/bin/python benchmarks/cached_attention.py
"""

from __future__ import annotations

import argparse
import functools
import time

import torch
import torch.nn.functional as F
from decode_vs_llamacpp import positive
from int_kernels import cpu_flags

from llmos.kernels import build, int_dot
from llmos.kernels.cached_attention import available


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--columns", type=positive, nargs="+", default=[160, 600, 2048])
    parser.add_argument("--open", type=float, default=0.5, help="the fraction of columns the mask lets through")
    parser.add_argument("--repeats", type=positive, default=5)
    parser.add_argument("--calls", type=positive, default=1000, help="calls a burst")
    args = parser.parse_args()
    if not 0 < args.open <= 1:
        parser.error(f"--open must be in (0, 1], got {args.open}")
    if not available():
        raise SystemExit(f"the C++ kernels are not built here: {build.unavailable_reason()}")
    print(f"CPU flags: {cpu_flags()}; torch {torch.__version__}")
    isas = int_dot.supported_isas()
    print(f"{'threads':>7} {'columns':>7}  {'SDPA us':>8}  " + "  ".join(f"{isa + ' us':>13}" for isa in isas)
          + "  best x SDPA")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for columns in args.columns:
            g = torch.Generator().manual_seed(columns)
            q = torch.randn(1, 1, 9, 64, generator=g).transpose(1, 2)  # as a layer hands it: (B, H, T, D)
            k, v = torch.randn(1, 3, columns, 64, generator=g), torch.randn(1, 3, columns, 64, generator=g)
            mask = torch.zeros(1, 1, 1, columns, dtype=torch.bool)
            mask[..., : max(1, int(columns * args.open))] = True
            runs = {"sdpa": functools.partial(F.scaled_dot_product_attention, q, k, v, attn_mask=mask, enable_gqa=True)}
            for index, isa in enumerate(isas):
                runs[isa] = functools.partial(torch.ops.llmos.cached_attention, q, k, v, mask, 0.125, index)
            exact = runs["sdpa"]()
            for isa in isas:
                assert (runs[isa]() - exact).abs().max() < 1e-4, isa
            best = dict.fromkeys(runs, float("inf"))
            for _ in range(args.repeats):
                for name, fn in runs.items():
                    fn()
                    best[name] = min(best[name], per_call_us(fn, args.calls))
            ours = min(best[isa] for isa in isas)
            print(f"{threads:>7} {columns:>7}  {best['sdpa']:>8.1f}  "
                  + "  ".join(f"{best[isa]:>13.1f}" for isa in isas) + f"  {best['sdpa'] / ours:>10.2f}x")


if __name__ == "__main__":
    main()
