"""Real-model speed: LLMOS against llama.cpp and transformers on the same GGUF file, one run.

Rows (batch 1, greedy, 2 threads): SmolLM2-135M-Instruct (the `smollm2` embedded model,
GGUF Q4_1 with a Q8_0 embedding) through

- transformers, fp32 (its own GGUF loader dequantizes the file);
- llama.cpp (llama-cpp-python) on the file itself;
- LLMOS fp32 (`quantize="none"`: the file's values dequantized), int8 (`quantize="int8"`:
  every linear per-channel int8) and int4 (the default for a GGUF: the Q4_1 blocks in the
  int4 kernel, the Q8_0 head as grouped int8, codes unchanged). Their integer kernels take
  adaptive activation codes (see `llmos.kernels.int_dot`); the int4-16bit row (not in the
  default rows) gives every block 16-bit codes, for comparison;

and a GPT-2 124M shape with random weights written as an F32 GGUF (the gguf package's
writer) through LLMOS fp32 and llama.cpp. LLMOS decodes through its compiled decode step (the
default; `--eager` for the eager one); the batch-8 rows decode 8 prompts at once (tokens/s over
all rows). The header prints the host's CPU flags and the kernel every quantized linear chose
(measured on this host, see `llmos.kernels.choice`); `--compile-times` also times the first
compile (an empty Inductor cache) and a warm start (a second process), each in a process of its own. Each row reports decode tokens/s (a 32-token
prompt, 128 new tokens; from the first new token to the last, so the prompt is not
counted) and prompt processing of 512 tokens (tokens/s, no sampling). Best of --repeats.
Ratios are against llama.cpp measured in this same run. With the fp32 row it also prints the host's
read bandwidth and the ceiling it sets for any batch-1 fp32 decoder (bandwidth / weight bytes). With `--rounds N` every row is measured
N times, the rows taking turns (llama.cpp, then each LLMOS row, then llama.cpp again...), so
that a host whose speed drifts during the run (these shared 2-core hosts drift by 20%) slows
both sides alike; the table gives each row's best over the rounds, and a last column the
median of the rounds' own ratios.

llama-cpp-python builds from source (about 10-15 minutes on 2 cores): the script builds it
once into ~/.cache/llmos/peers/llama-cpp-python-<features> (a venv of its own, for this CPU's
features, AMX left out: it crashes here) and reuses it; it is never built in tests or CI.
--no-llama-cpp skips those rows.

`--isa avx2` runs both sides as on a CPU with AVX2 and no AVX-512 (an AMD Zen 3), on a host that
has more: the script restarts itself with torch, Inductor, oneDNN, MKL and LLMOS's int_dot held to
AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS, LLMOS_INT_DOT_ISA), and
llama.cpp is built for AVX, AVX2, FMA, F16C and BMI2 only. It limits the instructions, not the
machine: caches and memory bandwidth stay the host's. Run:

    .venv/bin/python benchmarks/decode_vs_llamacpp.py
    .venv/bin/python benchmarks/decode_vs_llamacpp.py --new-tokens 32 --repeats 1   # quicker
    .venv/bin/python benchmarks/decode_vs_llamacpp.py --isa avx2 --rows llama.cpp,int8,int4 --rounds 3
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# --isa avx2: every library held to AVX2 (read when each loads, so set before torch is imported)
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "LLMOS_INT_DOT_ISA": "avx2"}
if __name__ == "__main__" and ("--isa=avx2" in sys.argv or "--isa avx2" in " ".join(sys.argv)) and \
        any(os.environ.get(k) != v for k, v in AVX2_ONLY.items()):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_ONLY})

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

LLAMA_CPP_VERSION = "0.3.36"
PROMPT_TEXT = ("The history of the printing press begins in the fifteenth century, when Johannes "
               "Gutenberg combined movable metal type, oil-based ink and a wooden press. ")

LLAMA_CPP_SCRIPT = r"""
import json, sys, time
import llama_cpp
path, threads, prompt, new, long = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
repeats = int(sys.argv[6])
llm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, n_batch=512,
                      verbose=False)
decode, prefill = 0.0, 0.0
for _ in range(repeats):
    llm.reset()
    stamps = []
    for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
        stamps.append(time.perf_counter())
        if len(stamps) == new:
            break
    decode = max(decode, (new - 1) / (stamps[-1] - stamps[0]))
    llm.reset()
    start = time.perf_counter()
    llm.eval(long)
    prefill = max(prefill, len(long) / (time.perf_counter() - start))
print(json.dumps({"decode": decode, "prefill": prefill}))
"""


# llama.cpp's CPU features, named by the /proc/cpuinfo flag that enables each. AMX is left out: on the
# AMX hosts here llama.cpp's AMX matmul crashes (SIGSEGV in ggml_backend_amx_mul_mat) at the first eval.
GGML_FEATURES = {"avx": "AVX", "avx2": "AVX2", "fma": "FMA", "f16c": "F16C", "bmi2": "BMI2", "avx512f": "AVX512",
                 "avx512vbmi": "AVX512_VBMI", "avx512_vnni": "AVX512_VNNI", "avx512_bf16": "AVX512_BF16",
                 "avx_vnni": "AVX_VNNI"}
AVX2_FEATURES = ("AVX", "AVX2", "FMA", "F16C", "BMI2")  # what an AVX2-only CPU (AMD Zen 3) has of them


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def llama_cpp_python(build: bool, server: bool = False, isa: str = "native") -> Path | None:
    """The python of the cached llama-cpp-python venv (with its server when `server`), built there once
    when missing: for this CPU's features (not -march=native, and without AMX, see GGML_FEATURES; with
    `isa` "avx2" only those of AVX2_FEATURES), so a venv is named by the features it was built for."""
    import hashlib

    from llmos.measured import cache_dir

    features = sorted(name for flag, name in GGML_FEATURES.items() if flag in cpu_flags()
                      and (isa != "avx2" or name in AVX2_FEATURES))
    tag = hashlib.sha1(" ".join(features).encode()).hexdigest()[:8]
    venv = cache_dir() / "peers" / f"llama-cpp-python-{tag}"
    python = venv / "bin" / "python"
    check = "import llama_cpp" + ("; import llama_cpp.server.app" if server else "")
    if python.exists() and subprocess.run([python, "-c", check], capture_output=True).returncode == 0:
        return python
    if not build:
        return None
    print(f"building llama-cpp-python {LLAMA_CPP_VERSION} into {venv} for {' '.join(features)} "
          "(once; ~10-15 minutes)...", flush=True)
    cmake = ["-DGGML_NATIVE=OFF", *(f"-DGGML_{name}={'ON' if name in features else 'OFF'}"
                                    for name in GGML_FEATURES.values()),
             "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    package = f"llama-cpp-python[server]=={LLAMA_CPP_VERSION}" if server else f"llama-cpp-python=={LLAMA_CPP_VERSION}"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-cache-dir", package], check=True,
                   env={**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2", "CMAKE_ARGS": " ".join(cmake)})
    return python


class Stamps:
    """A streamer that only records when each new token arrives (generate's streamer protocol)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def torch_row(model, prompt: list[int], long: list[int], new: int, repeats: int, batch: int = 1,
              **generate_kw) -> dict:
    """Decode tokens/s (batch 1: from the first new token to the last; batch > 1: all rows' new tokens
    over the whole call) and prompt processing tokens/s."""
    ids = torch.tensor([prompt] * batch)
    decode, prefill = 0.0, 0.0
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=4, do_sample=False, **generate_kw)  # warm-up (and compile)
        for _ in range(repeats):
            if batch == 1:
                stamps = Stamps()
                model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, streamer=stamps,
                               **generate_kw)
                decode = max(decode, (new - 1) / (stamps.times[-1] - stamps.times[0]))
            else:
                start = time.perf_counter()
                model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, **generate_kw)
                decode = max(decode, batch * new / (time.perf_counter() - start))
            x = torch.tensor([long])
            start = time.perf_counter()
            model(x, logits_to_keep=1)
            prefill = max(prefill, len(long) / (time.perf_counter() - start))
    return {"decode": decode, "prefill": prefill}


def kernels_chosen(model) -> str:
    """'kernel xN, ...' over the model's quantized linears (what serves decoding on this host)."""
    from collections import Counter

    counts = Counter(m.kernel for m in model.modules() if hasattr(m, "kernel"))
    return ", ".join(f"{kernel} x{n}" for kernel, n in counts.most_common()) or "no quantized linears"


COMPILE_SCRIPT = r"""
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from llmos import AutoModelForCausalLM
from llmos.generation.decode_step import set_compile
set_compile(True)
model = AutoModelForCausalLM.from_pretrained("smollm2")
start = time.perf_counter()
model.generate(torch.tensor([[1, 2, 3, 4]]), max_new_tokens=3, do_sample=False)
print(time.perf_counter() - start)
"""


def compile_times(threads: int) -> tuple[float, float]:
    """(first compile, warm start) in seconds: a generate call that compiles the decode step in a new
    process with an empty Inductor cache, then the same in a second process over that cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        times = [float(subprocess.run([sys.executable, "-c", COMPILE_SCRIPT, str(threads)], env=env, check=True,
                                      capture_output=True, text=True).stdout.split()[-1]) for _ in range(2)]
    return times[0], times[1]


def llama_cpp_row(python: Path, path: Path, threads: int, prompt, new: int, long, repeats: int) -> dict:
    out = subprocess.run([python, "-c", LLAMA_CPP_SCRIPT, str(path), str(threads), json.dumps(prompt), str(new),
                          json.dumps(long), str(repeats)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def gpt2_gguf(directory: Path) -> Path:
    """GPT-2 124M with random weights (std 0.02) as an F32 GGUF with a synthetic 50,257-token vocabulary."""
    import gguf
    from gguf_models import write_model_tensors

    from llmos.config import ModelConfig
    from llmos.model import CausalLM

    path = directory / "gpt2-124m-random.F32.gguf"
    writer = gguf.GGUFWriter(str(path), "gpt2")
    alphabet = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(161, 173)] + [chr(c) for c in range(174, 256)]
    alphabet += [chr(256 + i) for i in range(256 - len(alphabet))]  # GPT-2's byte-to-unicode alphabet
    tokens = alphabet + [f"tok{i}" for i in range(50256 - len(alphabet))] + ["<|endoftext|>"]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * 50256 + [3])
    writer.add_token_merges(["Ġ t"])
    writer.add_eos_token_id(50256)
    writer.add_bos_token_id(50256)
    torch.manual_seed(0)
    write_model_tensors(writer, CausalLM(ModelConfig.from_preset("gpt2")), "F32")
    return path


def read_bandwidth(threads: int) -> float:
    """GB/s this host reads with torch: a sum over 1 GiB of float32, best of 3 (the ceiling of any
    batch-1 decoder is this over its weight bytes a token)."""
    torch.set_num_threads(threads)
    x = torch.ones(1 << 28)
    x.sum()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best / 1e9


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--long-prompt", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--rounds", type=positive, default=1,
                        help="measure every row this many times, the rows taking turns (see above)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", default="transformers,llama.cpp,fp32,int8,int4,int4-batch8,gpt2",
                        help="comma list of transformers, llama.cpp, fp32, int8, int4, int4-batch8, "
                             "int4-16bit (16-bit activation codes everywhere, not adaptive), "
                             "transformers-batch8, gpt2")
    parser.add_argument("--eager", action="store_true", help="LLMOS decodes eagerly (no compiled step)")
    parser.add_argument("--compile-times", action="store_true",
                        help="also time the first compile and a warm start (two extra processes)")
    parser.add_argument("--no-llama-cpp", action="store_true", help="skip (and never build) llama.cpp")
    parser.add_argument("--isa", choices=("native", "avx2"), default="native",
                        help="avx2: both sides held to AVX2, as on an AVX2-only CPU (see above)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = args.rows.split(",")

    from llmos import AutoModelForCausalLM, AutoTokenizer
    from llmos.model_names import EMBEDDED, resolve_model

    path = resolve_model("smollm2").path
    tokenizer = AutoTokenizer.from_pretrained(path)
    text_ids = tokenizer.encode(PROMPT_TEXT * 40)
    prompt, long = text_ids[: args.prompt_tokens], text_ids[: args.long_prompt]
    python = None if args.no_llama_cpp else llama_cpp_python(build="llama.cpp" in rows or "gpt2" in rows,
                                                             isa=args.isa)
    from llmos.generation.decode_step import set_compile
    from llmos.kernels.choice import cpu_name

    set_compile(not args.eager)
    flags = cpu_flags()
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
             if f in flags]
    print(f"{cpu_name()}; flags: {' '.join(shown) or 'none of avx2/avx512/bf16/amx'}; torch {torch.__version__}, "
          f"{args.threads} threads; LLMOS decode step: {'eager' if args.eager else 'compiled'}")
    if args.isa == "avx2":
        print(f"held to AVX2 as on an AVX2-only CPU: torch {torch.backends.cpu.get_cpu_capability()}, "
              f"{', '.join(f'{k}={v}' for k, v in AVX2_ONLY.items())}; llama.cpp built for {' '.join(AVX2_FEATURES)}")
    print(f"{EMBEDDED['smollm2'].description}; prompt {len(prompt)} tokens, {args.new_tokens} new tokens (greedy), "
          f"prompt processing {len(long)} tokens")
    runs: dict[str, Callable[[], dict]] = {}  # row -> one measurement (best of --repeats)
    if python is not None and "llama.cpp" in rows:
        runs["llama.cpp"] = functools.partial(llama_cpp_row, python, path, args.threads, prompt, args.new_tokens,
                                              long, args.repeats)
    if "transformers" in rows:
        import transformers

        transformers.logging.set_verbosity_error()
        hf = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                               dtype=torch.float32).eval()
        runs["transformers fp32"] = functools.partial(torch_row, hf, prompt, long, args.new_tokens, args.repeats,
                                                      pad_token_id=tokenizer.pad_token_id)
        if "transformers-batch8" in rows:
            runs["transformers fp32, batch 8"] = functools.partial(
                torch_row, hf, prompt, long, args.new_tokens, args.repeats, batch=8,
                pad_token_id=tokenizer.pad_token_id)
    from llmos.kernels import adapt_activations

    for name, quantize, batch in (("fp32", "none", 1), ("int8", "int8", 1), ("int4", "auto", 1),
                                  ("int4-16bit", "auto", 1), ("int4-batch8", "auto", 8)):
        if name in rows:
            model = adapt_activations(AutoModelForCausalLM.from_pretrained(path, quantize=quantize),
                                      name != "int4-16bit")
            if name in ("int8", "int4"):
                print(f"  LLMOS {name} kernels: {kernels_chosen(model)}", flush=True)
            label = (f"LLMOS {name.split('-')[0]}" + (f", batch {batch}" if batch > 1 else "")
                     + (", 16-bit activations" if name == "int4-16bit" else ""))
            runs[label] = functools.partial(torch_row, model, prompt, long, args.new_tokens, args.repeats,
                                            batch=batch)
            if name == "fp32":
                fp32_bytes = model.num_parameters() * 4
    rounds = [{label: run() for label, run in runs.items()} for _ in range(args.rounds)]
    results = {label: {key: max(r[label][key] for r in rounds) for key in ("decode", "prefill")} for label in runs}
    peer = results.get("llama.cpp")
    print("what ran in this run: every row (llama.cpp in a subprocess of its own venv); "
          + ("ratios against llama.cpp as measured here" if peer else "llama.cpp did not run: ratios unknown")
          + (f"; {args.rounds} rounds, the rows taking turns" if args.rounds > 1 else ""))
    per_round = args.rounds > 1 and peer is not None
    print(f"{'SmolLM2-135M-Instruct':26} {'decode tok/s':>12} {'x llama.cpp':>11} {'prompt tok/s':>13} "
          f"{'x llama.cpp':>11}" + (f" {'decode x llama.cpp, each round (median)':>40}" if per_round else ""))
    for name, r in results.items():
        ratio = (f"{r['decode'] / peer['decode']:10.2f}x", f"{r['prefill'] / peer['prefill']:10.2f}x") if peer \
            else ("unknown", "unknown")
        line = f"{name:26} {r['decode']:12.1f} {ratio[0]:>11} {r['prefill']:13.1f} {ratio[1]:>11}"
        if per_round:
            ratios = [x[name]["decode"] / x["llama.cpp"]["decode"] for x in rounds]
            line += f" {' '.join(f'{x:.2f}' for x in ratios):>32} ({statistics.median(ratios):.2f})"
        print(line)
    if "transformers fp32" in results and "LLMOS fp32" in results:
        print(f"LLMOS fp32 / transformers fp32: decode "
              f"{results['LLMOS fp32']['decode'] / results['transformers fp32']['decode']:.2f}x, prompt "
              f"{results['LLMOS fp32']['prefill'] / results['transformers fp32']['prefill']:.2f}x")
    if "LLMOS fp32" in results:
        bandwidth = read_bandwidth(args.threads)
        ceiling = bandwidth * 1e9 / fp32_bytes
        print(f"fp32 ceiling: this host reads {bandwidth:.1f} GB/s (torch sum over 1 GiB), the fp32 model is "
              f"{fp32_bytes / 1e6:.0f} MB, so no batch-1 fp32 decoder passes ~{ceiling:.0f} tok/s"
              + (f" ({ceiling / results['transformers fp32']['decode']:.2f}x transformers fp32)"
                 if "transformers fp32" in results else ""))
    if args.compile_times and not args.eager:
        first, warm = compile_times(args.threads)
        print(f"compiled decode step (SmolLM2 int4): first compile {first:.1f} s (empty Inductor cache), "
              f"warm start {warm:.1f} s (a second process); our goals: <= 60 s and <= 10 s")
    if "gpt2" in rows:
        with tempfile.TemporaryDirectory() as tmp:
            gpt2_path = gpt2_gguf(Path(tmp))
            ids = list(range(1000, 1000 + args.prompt_tokens))
            long_ids = [(i * 7919) % 50000 for i in range(args.long_prompt)]
            gpt2 = {"LLMOS fp32": torch_row(AutoModelForCausalLM.from_pretrained(gpt2_path, quantize="none"),
                                            ids, long_ids, args.new_tokens, args.repeats)}
            if python is not None:
                gpt2["llama.cpp F32"] = llama_cpp_row(python, gpt2_path, args.threads, ids, args.new_tokens,
                                                      long_ids, args.repeats)
        print(f"{'GPT-2 124M (random, F32)':26} {'decode tok/s':>12} {'':>11} {'prompt tok/s':>13}")
        for name, r in gpt2.items():
            print(f"{name:26} {r['decode']:12.1f} {'':>11} {r['prefill']:13.1f}")
        if "llama.cpp F32" in gpt2:
            a, b = gpt2["LLMOS fp32"], gpt2["llama.cpp F32"]
            print(f"LLMOS / llama.cpp on GPT-2: decode {a['decode'] / b['decode']:.2f}x, "
                  f"prompt {a['prefill'] / b['prefill']:.2f}x")


if __name__ == "__main__":
    main()
