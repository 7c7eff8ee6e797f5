"""Quality of the quantized kernels: SmolLM2's perplexity on Tiny Shakespeare, fp32 against int4 and int8.

The validation split of ../shared/data/tinyshakespeare.txt (its last 10%), the first
32,768 tokens, scored in windows of 1,024 tokens (each window on its own, every token
after the first of a window predicted). Rows:

- fp32: the GGUF file's values dequantized to float32 (`quantize="none"`);
- int4: the default for the file: its Q4_1 blocks in the int4 kernel and its Q8_0 head as
  grouped int8, codes unchanged (on int_dot: f16 scales exact; activations as adaptive codes,
  16 bits only in the blocks one value dominates, and 16 bits everywhere in the head; the
  "16-bit activations" row gives every block 16 bits; on torch's kernels: scales and
  activations in bf16; the row names the kernel, and LLMOS_INT_KERNEL=int_dot|torch picks one). Many-row inputs normally take the dequantized
  fp32 path; here every matmul is forced through the kernel (unless --dequantized-path) so
  the figure is the kernel's;
- int8: every linear quantized per output channel from the fp32 values (`quantize="int8"`),
  with the same two kinds of activation codes.

Our goals: int4 equal to fp32 within 1e-3 relative, int8 within +1%. Run:

    .venv/bin/python benchmarks/smollm2_perplexity.py [--tokens 32768] [--data PATH]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def perplexity(model, ids: list[int], window: int) -> float:
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(ids), window):
            x = torch.tensor([ids[start:start + window]])
            if x.shape[1] < 2:
                break
            logits = model(x).logits[0, :-1].float()
            total += F.cross_entropy(logits, x[0, 1:], reduction="sum").item()
            count += x.shape[1] - 1
    return math.exp(total / count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--tokens", type=int, default=32768)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dequantized-path", action="store_true",
                        help="let many-row inputs take the dequantized fp32 path (the library's default)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from llmos import AutoModelForCausalLM, AutoTokenizer
    from llmos.kernels import adapt_activations, quantized

    if not args.data.is_file():
        raise SystemExit(f"no data at {args.data}; pass --data PATH to tinyshakespeare.txt")
    text = args.data.read_text(encoding="utf-8")
    validation = text[int(len(text) * 0.9):]
    ids = AutoTokenizer.from_pretrained("smollm2").encode(validation)[: args.tokens]
    if not args.dequantized_path:
        quantized.FEW_ROWS = 1 << 30  # every matmul through the quantized kernels
    print(f"SmolLM2-135M-Instruct, {len(ids)} tokens of the Tiny Shakespeare validation split, windows of "
          f"{args.window}; quantized matmuls through the {'dequantized fp32 path' if args.dequantized_path else 'kernels'}")
    base = None
    for name, quantize, adaptive in (("fp32", "none", True),
                                     ("int4 (file's Q4_1 + Q8_0 codes)", "auto", True),
                                     ("  with 16-bit activations", "auto", False),
                                     ("int8 (per channel)", "int8", True),
                                     ("  with 16-bit activations", "int8", False)):
        model = adapt_activations(AutoModelForCausalLM.from_pretrained("smollm2", quantize=quantize), adaptive)
        kernel = getattr(model.transformer.blocks[0].attn.qkv, "kernel", "float")
        start = time.perf_counter()
        value = perplexity(model, ids, args.window)
        base = base or value
        print(f"{name:34} perplexity {value:8.4f}   relative to fp32 {value / base - 1:+.5f}   "
              f"({time.perf_counter() - start:.0f} s, {kernel})", flush=True)


if __name__ == "__main__":
    main()
