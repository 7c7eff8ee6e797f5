"""Layer 2b (kernels): which fp32 kernel wins on this machine, measured once and cached.

oneDNN's inner product beats MKL's sgemm on this project's AMD Zen 3 for every
row count, but the margin for few rows (decoding) depends on the CPU and on
the thread count, and on an Intel CPU MKL's mat-vec may well win. So the first
time kernels are applied, a short benchmark (~0.3 s) times a 1-row and a
4-row product against a 2048 x 1024 weight through both, and the result is
kept in ~/.cache/llmos/kernels.json keyed by CPU, thread count and torch
version (see `llmos.measured`). Many-row products always go to oneDNN where it
exists: there it wins 2x on every x86 CPU measured so far.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from llmos.kernels.onednn import ONEDNN, inner_product
from llmos.measured import measured_once


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _best_seconds(fn, repeats: int = 40) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_few_rows() -> dict[str, float | bool]:
    """Time few-row products through F.linear (MKL) and oneDNN; which is faster?"""
    weight = torch.randn(2048, 1024)
    timings: dict[str, float | bool] = {}
    for rows in (1, 4):
        x = torch.randn(rows, 1024)
        timings[f"mkl_{rows}_row_us"] = 1e6 * _best_seconds(lambda x=x: F.linear(x, weight))
        timings[f"onednn_{rows}_row_us"] = 1e6 * _best_seconds(lambda x=x: inner_product(x, weight))
    mkl = timings["mkl_1_row_us"] + timings["mkl_4_row_us"]
    onednn = timings["onednn_1_row_us"] + timings["onednn_4_row_us"]
    timings["few_rows_onednn"] = onednn <= mkl
    return timings


def few_rows_onednn() -> bool:
    """Whether few-row CPU fp32 linears should use oneDNN here (measured once per machine setting)."""
    if not ONEDNN:
        return False
    key = f"{cpu_name()}:threads={torch.get_num_threads()}:torch={torch.__version__}"
    with torch.no_grad():
        return bool(measured_once("kernels.json", key, measure_few_rows)["few_rows_onednn"])
