"""Layer 2b (kernels): which kernels win on this machine, measured once and cached.

fp32, few rows:

oneDNN's inner product beats MKL's sgemm on this project's AMD Zen 3 for every
row count, but the margin for few rows (decoding) depends on the CPU and on
the thread count, and on an Intel CPU MKL's mat-vec may well win. So the first
time kernels are applied, a short benchmark (~0.3 s) times a 1-row and a
4-row product against a 2048 x 1024 weight through both, and the result is
kept in ~/.cache/llmos/kernels.json keyed by CPU, thread count and torch
version (see `llmos.measured`). Many-row products always go to oneDNN where it
exists: there it wins 2x on every x86 CPU measured so far.

Training precision (`bf16_products`): whether bf16 autocast makes a training-sized product
faster than fp32 here (native bf16: several times; AVX2 only: several times slower), so a recipe's
`dtype: auto` trains in bf16 only where it pays.

Quantized, few rows (`int_kernel_for`): for each method (int4, GGUF's grouped int8, per-channel
int8), the integer kernels of `int_dot` against torch's own (`_weight_int4pack_mm_for_cpu`,
`_weight_int8pack_mm`, bf16 activations), on SmolLM2-135M's decode shapes (qkv 960 x 576,
out 576 x 576, gate-up 3072 x 576, down 576 x 1536, each counted 30 times, and the 49152 x 576
head as a quarter of it counted 4 times) at 1 and 8 rows; int_dot wins unless torch's is 20% faster on the median shape (int_dot is the
more exact; a median resists a shared machine's noise). Under a second,
once per machine setting (cached under a key that also names int_dot's source and code path);
LLMOS_INT_KERNEL=int_dot|torch skips it.

Quantized, many rows (`int_dot_rows_limit`): a prompt's rows can go through int_dot too, or the
weight be dequantized to fp32 for one oneDNN GEMM. int_dot's cost grows with the rows, the
dequantization's is paid once per call, so past some row count the GEMM wins: on the Xeon with
VNNI here int_dot is 5x faster at 32 rows, 1.2-2x at 256 and 10% slower at 2048 (SmolLM2's 1536 x
576 and 576 x 1536 int4 layers). The limit is the largest of 64, 256 and 1024 rows up to which
int_dot wins on those shapes, measured once per machine setting like the rest.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from llmos.kernels import build, int_dot
from llmos.kernels.onednn import ONEDNN, inner_product
from llmos.measured import measured_once


@functools.cache
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_setting() -> str:
    """What every measurement here depends on: the CPU, the instructions torch may use on it (all it
    has, unless ATEN_CPU_CAPABILITY holds it to fewer), the thread count and torch's version."""
    return (f"{cpu_name()}:isa={torch.backends.cpu.get_cpu_capability()}:threads={torch.get_num_threads()}:"
            f"torch={torch.__version__}")


def _best_seconds(fn, repeats: int = 40) -> float:
    """The fastest of `repeats` calls (after one warm-up): the machine is shared, noise only adds."""
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
    key = machine_setting()
    with torch.no_grad():
        return bool(measured_once("kernels.json", key, measure_few_rows)["few_rows_onednn"])


BF16_MARGIN = 0.8  # bf16 autocast is chosen when its products take at most this share of fp32's


def measure_bf16_products() -> dict[str, float | bool]:
    """Time a training-sized product (2,048 rows through a 1536 x 576 weight) in fp32 and under
    bf16 autocast (casts included): native bf16 (AVX-512 BF16, AMX) makes it several times faster,
    an AVX2-only CPU several times slower."""
    x, weight = torch.randn(2048, 576), torch.randn(1536, 576)

    def autocast_bf16() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return F.linear(x, weight)

    timings: dict[str, float | bool] = {"fp32_ms": 1e3 * _best_seconds(lambda: F.linear(x, weight), 10),
                                        "bf16_autocast_ms": 1e3 * _best_seconds(autocast_bf16, 10)}
    timings["bf16_pays"] = timings["bf16_autocast_ms"] <= BF16_MARGIN * timings["fp32_ms"]
    return timings


def bf16_products() -> dict[str, float | bool]:
    """`measure_bf16_products` for this CPU and thread count (measured once per machine setting)."""
    key = f"{machine_setting()}:bf16_products"
    with torch.no_grad():
        return measured_once("kernels.json", key, measure_bf16_products)


INT_KERNELS = ("int_dot", "torch")
TORCH_MARGIN = 0.2  # torch's kernel is chosen only when it is this much faster (int_dot is the more exact)
INT_METHODS = ("int4", "int8-group32", "int8")
# (out, in) and how many of them a step runs; a quarter of the head, 4 times (the same per-row work,
# still far beyond L2, in a quarter of the set-up time)
DECODE_SHAPES = (((960, 576), 30), ((576, 576), 30), ((3072, 576), 30), ((576, 1536), 30), ((12288, 576), 4))
_int_choice: dict[str, dict[str, str]] = {}  # measurement key -> {method: kernel}, once per process


def _int_products(method: str, out_features: int, in_features: int) -> dict[str, object]:
    """Both kernels' callables x2 -> y for a (out, in) layer of `method` with random codes (the
    kernels' speed does not depend on the values: torch's packed bytes are drawn directly, since
    packing the head's codes into its layout takes seconds)."""
    ops = torch.ops.aten
    blocks = in_features // 32
    if method == "int8":
        codes = torch.randint(-127, 128, (out_features, in_features), dtype=torch.int8)
        scales = (torch.rand(out_features) / 64).bfloat16()
        ours = int_dot.pack_int8(codes, scales)
        return {"int_dot": lambda x: int_dot.int8_linear(x, *ours, out_features),
                "torch": lambda x: ops._weight_int8pack_mm(x.bfloat16(), codes, scales)}
    planes = 1 if method == "int4" else 2  # grouped int8 runs on torch's int4 kernel as two 4-bit planes
    packed = torch.randint(0, 256, (out_features, planes * in_features // 2), dtype=torch.uint8)
    table = (torch.rand(planes * blocks, out_features, 2) / 64).bfloat16()
    if method == "int4":
        ours4 = int_dot.pack_int4(packed, torch.rand(out_features, blocks), torch.randn(out_features, blocks))
        torch_kernel = lambda x: ops._weight_int4pack_mm_for_cpu(x.bfloat16(), packed, 32, table)  # noqa: E731
        return {"int_dot": lambda x: int_dot.int4_linear(x, *ours4, out_features), "torch": torch_kernel}
    ours8 = int_dot.pack_int8(packed.view(torch.int8).view(out_features, in_features), torch.rand(out_features, blocks))
    return {"int_dot": lambda x: int_dot.int8_linear(x, *ours8, out_features),
            "torch": lambda x: ops._weight_int4pack_mm_for_cpu(torch.cat([x, x], 1).bfloat16(), packed, 32, table)}


def _best_in_turns(calls: dict[str, object], rounds: int, burst: int = 2) -> dict[str, float]:
    """Fastest seconds of each callable, the callables taking turns (a warm-up call and `burst` timed
    ones each round): a neighbour's burst of work on a shared machine slows both kernels alike."""
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, fn in calls.items():
            fn()
            for _ in range(burst):
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def measure_int_kernels() -> dict[str, object]:
    """Microseconds of one SmolLM2-135M decode step's matmuls per method and kernel (1 and 8 rows),
    and the kernel chosen per method: int_dot, unless torch's is faster by more than TORCH_MARGIN
    on the median shape. int_dot's 16-bit activation codes are the more exact (SmolLM2's perplexity
    through the file's int4 codes: equal to fp32's to 5 digits on int_dot, +0.023% on torch's bf16
    kernel), and a median of per-shape ratios is not moved by a neighbour's burst of work (with 2
    threads on 2 shared cores, every call can take milliseconds for a while: ratios near 1)."""
    timings: dict[str, object] = {}
    choice = {}
    for method in INT_METHODS:
        totals = dict.fromkeys(INT_KERNELS, 0.0)
        ratios = []  # torch / int_dot per (shape, rows)
        for (out_features, in_features), count in DECODE_SHAPES:
            kernels = _int_products(method, out_features, in_features)
            rounds = 3 if out_features * in_features > 4_000_000 else 8
            for rows in (1, 8):
                x = torch.randn(rows, in_features)
                best = _best_in_turns({name: (lambda fn=fn, x=x: fn(x)) for name, fn in kernels.items()}, rounds)
                ratios.append(best["torch"] / best["int_dot"])
                for name, seconds in best.items():
                    totals[name] += count * 1e6 * seconds
        median = sorted(ratios)[len(ratios) // 2]
        timings[method] = {**{name: round(us, 1) for name, us in totals.items()}, "torch/int_dot": round(median, 3)}
        choice[method] = "torch" if median < 1 - TORCH_MARGIN else "int_dot"
    timings["choice"] = choice
    return timings


INT_DOT_ROWS = (64, 256, 1024)  # row counts past the few-row ones where int_dot may still win
MANY_ROWS_SHAPES = ((1536, 576), (576, 1536))
_int_dot_rows: dict[str, int] = {}  # measurement key -> rows limit, once per process


def measure_int_dot_rows() -> dict[str, object]:
    """Milliseconds of SmolLM2's gate and down int4 layers at each of INT_DOT_ROWS rows, through
    int_dot and through dequantizing + one fp32 GEMM; `limit`: the rows up to which int_dot wins."""
    from llmos.kernels.quantized import Int4Linear  # the layer measured (it imports this module)

    timings: dict[str, object] = {"limit": 0}
    layers = [Int4Linear.from_float(torch.randn(shape)) for shape in MANY_ROWS_SHAPES]
    for rows in INT_DOT_ROWS:
        totals = {"int_dot": 0.0, "dequantized": 0.0}
        for layer in layers:
            x = torch.randn(rows, layer.in_features)
            best = _best_in_turns({"int_dot": lambda layer=layer, x=x: layer._int_dot(x),
                                   "dequantized": lambda layer=layer, x=x: layer._dequantized(x)}, rounds=3)
            for name, seconds in best.items():
                totals[name] += 1e3 * seconds
        timings[f"{rows}_rows_ms"] = {name: round(ms, 2) for name, ms in totals.items()}
        if totals["int_dot"] > totals["dequantized"]:
            break
        timings["limit"] = rows
    return timings


def _int_dot_key() -> str:
    """What int_dot's measurements depend on: the CPU, threads, torch, int_dot's source and code path."""
    return (f"{machine_setting()}:"
            f"int_dot={build.source_hash()}:isa={int_dot.isa_name()}")


def int_dot_rows_limit() -> int:
    """Up to how many rows int_dot serves a quantized linear that uses it (more: dequantized to
    fp32, one GEMM); 0 when the extension is missing. Measured once per machine setting."""
    if not int_dot.available():
        return 0
    key = _int_dot_key() + ":many_rows"
    if key not in _int_dot_rows:
        _int_dot_rows[key] = 0  # the layers built to measure it use this meanwhile
        with torch.no_grad():
            _int_dot_rows[key] = int(measured_once("kernels.json", key, measure_int_dot_rows)["limit"])
    return _int_dot_rows[key]


def int_kernel_for(method: str, in_features: int) -> str:
    """"int_dot" or "torch": which kernel a quantized linear of `method` uses for few rows here.

    int_dot needs in % 32 == 0 and its extension built; LLMOS_INT_KERNEL=int_dot|torch forces a
    choice, otherwise it is measured once per machine setting (`measure_int_kernels`)."""
    forced = os.environ.get("LLMOS_INT_KERNEL", "auto")
    if forced not in ("auto", *INT_KERNELS):
        raise ValueError(f"LLMOS_INT_KERNEL={forced!r} is not valid; expected one of {['auto', *INT_KERNELS]}")
    if forced == "torch" or not int_dot.fits(in_features) or not int_dot.available():
        return "torch"
    if forced == "int_dot":
        return "int_dot"
    key = _int_dot_key()
    if key not in _int_choice:
        with torch.no_grad():
            _int_choice[key] = measured_once("kernels.json", key, measure_int_kernels)["choice"]
    return _int_choice[key][method]
