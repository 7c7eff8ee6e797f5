"""Quantized matmul kernels side by side: int_dot (ours, per code path) against torch's, one process.

Prints the CPU's flags, then for SmolLM2-135M's decode shapes (out x in: q/out 576 x 576, k/v
192 x 576, fused qkv 960 x 576, gate-up 3072 x 576, down 576 x 1536, head 49152 x 576) the
microseconds per call, best of --repeats, at each thread count and row count of:

- int_dot int4 (Q4_1-style blocks) and int8 (Q8_0-style blocks) on every code path this CPU has;
- torch's `_weight_int4pack_mm_for_cpu` (int4, bf16 activations; what `Int4Linear` falls back to),
  `_weight_int8pack_mm` (int8 per channel, bf16), and fp32 through F.linear and oneDNN.

Per-call times are for weights in cache (a burst of calls on one layer); then one whole decode
step's matmuls (30 layers of distinct weights, ~96 MB, so they stream from memory as in a real
step, plus the Q8_0 head) per kernel set. torch's kernels run on the ISA torch picked
(shown); `ATEN_CPU_CAPABILITY=avx2` makes them use their AVX2 code, to compare with int_dot's AVX2
path on an AVX-512 host. Timings on a shared machine are noisy: kernels are timed round-robin
and the best of the repeats is kept. Run:

    .venv/bin/python benchmarks/int_kernels.py
    ATEN_CPU_CAPABILITY=avx2 .venv/bin/python benchmarks/int_kernels.py --threads 1 --rows 1
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from llmos.kernels import int_dot
from llmos.kernels.onednn import ONEDNN, inner_product

SHAPES = {"q/out": (576, 576), "k/v": (192, 576), "qkv": (960, 576), "gate-up": (3072, 576),
          "down": (576, 1536), "head": (49152, 576)}
LAYER_SHAPES = ("qkv", "q/out", "gate-up", "down")  # one SmolLM2-135M block (its q/out: the out projection)
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_flags() -> str:
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    have = set(line.split(":", 1)[1].split())
    return " ".join(f"{flag}={'yes' if flag in have else 'no'}" for flag in FLAGS)


def cpu_model() -> str:
    from llmos.kernels.choice import cpu_name

    return cpu_name()


def layer(out_features: int, in_features: int, seed: int) -> dict[str, object]:
    """Every kernel's weights for one random (out, in) layer; scales and mins are float16 values, as
    in a GGUF file's Q4_1 / Q8_0 blocks."""
    g = torch.Generator().manual_seed(seed)
    blocks = in_features // 32
    codes4 = torch.randint(0, 16, (out_features, in_features), generator=g, dtype=torch.uint8)
    scales = (torch.rand(out_features, blocks, generator=g) / 64).half().float()
    zeros = (torch.randn(out_features, blocks, generator=g) / 64).half().float() + 8 * scales
    codes8 = torch.randint(-127, 128, (out_features, in_features), generator=g, dtype=torch.int8)
    return {
        "int4": int_dot.pack_int4(codes4[:, 0::2] | (codes4[:, 1::2] << 4), scales, zeros),
        "int8": int_dot.pack_int8(codes8, scales),
        "torch_int4": (torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes4.int(), 1),
                       torch.stack([scales.t(), zeros.t()], dim=-1).bfloat16().contiguous()),
        "torch_int8": (codes8, (torch.rand(out_features, generator=g) / 64).bfloat16()),
        "fp32": torch.randn(out_features, in_features, generator=g) / 30,
        "out": out_features,
    }


def kernels(isas: list[str]) -> dict[str, object]:
    """name -> fn(x, layer weights) -> y, for every kernel this run compares."""
    table: dict[str, object] = {}
    for index, isa in enumerate(isas):
        if isa == "scalar":
            continue
        table[f"int_dot int4 {isa}"] = lambda x, w, i=index: int_dot.int4_linear(x, *w["int4"], w["out"], i)
        table[f"int_dot int8 {isa}"] = lambda x, w, i=index: int_dot.int8_linear(x, *w["int8"], w["out"], i)
    table["torch int4 (bf16 act)"] = lambda x, w: torch.ops.aten._weight_int4pack_mm_for_cpu(
        x.bfloat16(), w["torch_int4"][0], 32, w["torch_int4"][1]).float()
    table["torch int8 (bf16 act)"] = lambda x, w: torch.ops.aten._weight_int8pack_mm(x.bfloat16(), *w["torch_int8"]).float()
    table["fp32 F.linear"] = lambda x, w: F.linear(x, w["fp32"])
    if ONEDNN:
        table["fp32 oneDNN"] = lambda x, w: inner_product(x, w["fp32"])
    return table


def best_us(calls: dict[str, object], repeats: int, burst: int = 5) -> dict[str, float]:
    """Best microseconds of each callable over `repeats` calls, in rounds that give each callable a
    burst of calls in turn: noise hits all alike, and within a burst its data is in cache."""
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(max(1, repeats // burst)):
        for name, fn in calls.items():
            fn()
            for _ in range(burst):
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], 1e6 * (time.perf_counter() - start))
    return best


def print_table(title: str, columns: list[str], rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"{'kernel':26}" + "".join(f"{c:>12}" for c in columns))
    for name, values in rows.items():
        print(f"{name:26}" + "".join(f"{values[c]:>12.0f}" for c in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--no-step", action="store_true", help="skip the whole decode step")
    args = parser.parse_args()
    if not int_dot.available():
        raise SystemExit("int_dot is not built here; run `python -m llmos.kernels` to see why")
    isas = int_dot.supported_isas()
    print(f"CPU: {cpu_model()}\nflags: {cpu_flags()}")
    print(f"torch {torch.__version__}, its kernels' ISA: {torch.backends.cpu.get_cpu_capability()}; "
          f"int_dot paths: {', '.join(isas)}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    table = kernels(isas)
    weights = {name: layer(*shape, seed=i) for i, (name, shape) in enumerate(SHAPES.items())}
    step_weights = None if args.no_step else (
        [{s: layer(*SHAPES[s], seed=100 + 4 * i + j) for j, s in enumerate(LAYER_SHAPES)} for i in range(30)],
        layer(*SHAPES["head"], seed=99))
    with torch.inference_mode():
        for threads in args.threads:
            torch.set_num_threads(threads)
            for rows in args.rows:
                results: dict[str, dict[str, float]] = {name: {} for name in table}
                for shape, w in weights.items():
                    x = torch.randn(rows, w["fp32"].shape[1])
                    repeats = max(5, args.repeats // 5) if shape == "head" else args.repeats
                    calls = {name: (lambda fn=fn, w=w, x=x: fn(x, w)) for name, fn in table.items()}
                    for name, us in best_us(calls, repeats).items():
                        results[name][f"{shape} {'x'.join(map(str, SHAPES[shape]))}"] = us
                columns = list(next(iter(results.values())))
                print_table(f"us per call, {threads} thread(s), {rows} row(s)", columns, results)
            if step_weights is not None:
                decode_step(table, isas, *step_weights, threads, args.rows, args.repeats)


def decode_step(table: dict[str, object], isas: list[str], blocks: list[dict[str, dict]], head: dict[str, object],
                threads: int, rows_list: list[int], repeats: int) -> None:
    """A SmolLM2-135M decode step's matmuls: 30 blocks of distinct weights, then the head."""
    best = isas[-1]
    sets = {  # name -> (kernel for the blocks, kernel for the head)
        f"int_dot {best}: int4 blocks, int8 head": (f"int_dot int4 {best}", f"int_dot int8 {best}"),
        "torch: int4 blocks, int8 head": ("torch int4 (bf16 act)", "torch int8 (bf16 act)"),
        "fp32 oneDNN" if ONEDNN else "fp32 F.linear": ("fp32 oneDNN",) * 2 if ONEDNN else ("fp32 F.linear",) * 2,
    }
    if "avx2" in isas and best != "avx2":
        sets["int_dot avx2: int4 blocks, int8 head"] = ("int_dot int4 avx2", "int_dot int8 avx2")
    print(f"\nwhole decode step's matmuls (30 blocks + head), ms, {threads} thread(s)")
    for rows in rows_list:
        def step(block_kernel, head_kernel, xs={n: torch.randn(rows, n) for n in (576, 1536)}):  # noqa: B006
            for block in blocks:
                for w in block.values():
                    table[block_kernel](xs[w["fp32"].shape[1]], w)
            table[head_kernel](xs[576], head)

        timed = best_us({name: (lambda k=k: step(*k)) for name, k in sets.items()}, max(6, repeats // 3), burst=2)
        for name, us in timed.items():
            print(f"  {rows} row(s)  {name:42} {us / 1000:8.2f}")


if __name__ == "__main__":
    main()
