"""Training throughput of LLMOS vs Hugging Face transformers on the same GPT-2 shape.

One optimizer step = forward, backward, AdamW update, on a batch of 8 x 256
tokens of a GPT-2 with 6 layers, 384 dims, 6 heads, vocabulary 8192, dropout 0,
in both libraries (transformers' GPT2LMHeadModel with SDPA attention and
torch.optim.AdamW; LLMOS' CausalLM with its own optimizer setup: AdamW with the
fused kernel and decay on matrices only). Steps of the two alternate in rounds so
both see the same machine conditions (median of the rounds). MFU uses one formula
for both (6 * matmul params + 12 * layers * d * T FLOPs per token, see
llmos.training.mfu) against the fp32 matmul peak measured at the start of the
run as the best of the kernels torch has (MKL's torch.mm and oneDNN's inner
product; both printed). LLMOS' linears train through oneDNN in the forward and
the input gradient and through MKL's mm in the weight gradient
(llmos.kernels.onednn); transformers' Conv1D layers use torch.addmm (MKL). How
far apart the two kernels are depends on the CPU: on a 2-core AMD Zen 3, MKL
reached less than half of oneDNN's peak (and transformers' MFU was low for that
reason); on a 2-core Zen 4 with AVX-512 they are within 15% of each other.

    python benchmarks/train_vs_transformers.py [--steps 2 --rounds 12 --compile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from llmos.config import ModelConfig
from llmos.kernels import use_kernels
from llmos.model import CausalLM
from llmos.training.mfu import measure_matmul_peaks, training_flops_per_token
from llmos.training.objectives import CausalLMObjective
from llmos.training.optim import build_optimizer

LAYERS, DIM, HEADS, VOCAB, CONTEXT, BATCH = 6, 384, 6, 8192, 256, 8


def ours(compile_model: bool):
    config = ModelConfig(vocab_size=VOCAB, d_model=DIM, n_layers=LAYERS, n_heads=HEADS, max_seq_len=CONTEXT,
                         position="learned", mlp="gelu_tanh", dropout=0.0, tie_embeddings=True)
    torch.manual_seed(0)
    model = use_kernels(CausalLM(config).train())
    optimizer = build_optimizer(model, lr=3e-4, weight_decay=0.1)
    forward = torch.compile(model) if compile_model else model
    objective = CausalLMObjective()

    def step(x, y):
        loss = objective.loss(forward, (x, y))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return model, config, step


def theirs():
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_config = GPT2Config(vocab_size=VOCAB, n_positions=CONTEXT, n_embd=DIM, n_layer=LAYERS, n_head=HEADS,
                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                           bos_token_id=None, eos_token_id=None)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(hf_config).train()
    model.config._attn_implementation = "sdpa"
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)

    def step(x, y):
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss

    return model, step


def time_steps(step, batches) -> float:
    start = time.perf_counter()
    for x, y in batches:
        step(x, y)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="steps per round per library")
    parser.add_argument("--rounds", type=int, default=12, help="rounds alternate the libraries; the median round counts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="torch.compile the LLMOS model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peaks = measure_matmul_peaks("cpu")
    peak = max(peaks.values())
    our_model, config, our_step = ours(args.compile)
    hf_model, hf_step = theirs()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, VOCAB, (BATCH, CONTEXT), generator=g),) * 2 for _ in range(args.steps)]
    batches = [(x, torch.roll(x, -1, dims=1)) for x, _ in batches]
    for _ in range(3):  # warm-up (and compilation)
        our_step(*batches[0])
        hf_step(*batches[0])
    our_times, hf_times = [], []
    for _ in range(args.rounds):
        hf_times.append(time_steps(hf_step, batches))
        our_times.append(time_steps(our_step, batches))
    tokens = args.steps * BATCH * CONTEXT
    our_tps = tokens / statistics.median(our_times)
    hf_tps = tokens / statistics.median(hf_times)
    n_ours = our_model.num_parameters()
    n_hf = sum(p.numel() for p in hf_model.parameters())
    flops = training_flops_per_token(config, n_ours, CONTEXT)
    print(f"GPT-2 shape: {LAYERS} layers, {DIM} dims, {HEADS} heads, vocab {VOCAB}, batch {BATCH} x {CONTEXT}, "
          f"dropout 0; params ours {n_ours:,} / transformers {n_hf:,}; threads {args.threads}")
    kernels = ", ".join(f"{name} {value / 1e9:.0f}" for name, value in peaks.items())
    print(f"measured fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s (best of: {kernels} GFLOP/s); "
          f"{flops / 1e6:.1f} MFLOP per trained token")
    print("what ran in this run: both libraries in this process, alternating rounds on the same batches")
    print("| library | tokens/s | MFU |")
    print("|---|---|---|")
    print(f"| transformers GPT2LMHeadModel | {hf_tps:,.0f} | {100 * flops * hf_tps / peak:.1f}% |")
    print(f"| LLMOS CausalLM{' (compiled)' if args.compile else ''} | {our_tps:,.0f} | {100 * flops * our_tps / peak:.1f}% |")
    print(f"ratio LLMOS / transformers: {our_tps / hf_tps:.2f}x (our goal: >= 1.15x, MFU >= 85%)")


if __name__ == "__main__":
    main()
