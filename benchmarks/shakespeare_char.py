"""nanoGPT's CPU Shakespeare recipe, trained with the LLMOS trainer and with nanoGPT itself, in one run.

Character-level tinyshakespeare, first 90% train / last 10% validation; a GPT
with 4 layers, 4 heads, 128 dims, context 64, exact GELU, no biases, dropout 0; batch 12,
2000 iterations, AdamW (beta2 0.99, weight decay 0.1, clip 1.0), lr 1e-3 with
100 warmup steps and cosine decay to 1e-4; validation loss on 20 batches every
250 steps. nanoGPT runs that recipe as

    python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20
        --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
        --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0

With `--nanogpt PATH` (a checkout of karpathy/nanoGPT, e.g. ../peers/nanoGPT) the
script copies it into a temporary directory, prepares its character data from
the same tinyshakespeare.txt (nanoGPT's own prepare.py; it skips its download
when input.txt is there) and runs that command in a subprocess, alternating
with the LLMOS runs (nanoGPT first in even rounds, LLMOS first in odd ones), so
that whatever else loads the machine hits both. Nothing of nanoGPT is kept.
Without `--nanogpt` nothing is compared: the ratio is printed as unknown.

Recipes (`--recipes`, both by default; every run, nanoGPT's and LLMOS's, trains with each):
- "nanogpt": the recipe above, the goal's reference; nanoGPT always runs it when it runs at all;
- "short": the same with 3x the peak learning rate (3e-3 -> 3e-4) and 5/8 of the iterations (1250).
Rows (both architectures have the same size and recipe):
- "nanoGPT": nanoGPT's train.py in a subprocess of this run (its seed is fixed at 1337);
- "LLMOS, nanoGPT GPT": nanoGPT's block in LLMOS (learned positions, LayerNorm, GELU);
- "LLMOS, Llama-style": RoPE + RMSNorm + SwiGLU (d_ff 341, so the parameter count matches).
Times: wall seconds and CPU seconds (all threads) from building the model to
the end of training, evaluations and checkpoints included, on both sides (for
nanoGPT: its whole train.py after `import torch`). Validation: "val loss (20)"
is nanoGPT's protocol (20 random 12 x 64 windows of the validation split, at
the end, inside the timed run; nanoGPT draws its own 20); "val loss (N)" is an
LLMOS-only, less noisy estimate on N other windows after the timed run.
Our goal: LLMOS reaches nanoGPT's final val loss (20) + 0.03 with nanoGPT's
recipe in <= 0.70x the wall time of that nanoGPT run, both measured in the same
round; the time to reach it is read at LLMOS's evaluations (every 250 steps),
after each evaluation ran. The table also gives each LLMOS run's time against
nanoGPT with the same recipe, which separates the trainer's share from the recipe's.

Measured (2026-11-30, `--nanogpt ../peers/nanoGPT --arch both --seeds 1337 1338`,
2 threads, nothing else running; the machine's speed still varied by 10-20%
between runs, CPU seconds with it): nanoGPT 106.9 / 111.1 s, val 1.886 (short
recipe: 69.6 / 71.4 s, 1.898). LLMOS with nanoGPT's GPT, same recipe:
1.05x / 0.79x, val 1.910 / 1.908, reaching 1.916 only at its end: with the same
model and recipe LLMOS is at parity, not at 0.70x. Goal met by:
- LLMOS's Llama-style block with nanoGPT's recipe: 1.916 reached at 0.61x / 0.34x, final val 1.682;
- either block with the short recipe: nanoGPT's GPT 0.69x / 0.55x (val 1.900 / 1.882),
  Llama-style 0.51x / 0.36x (whole run 0.63x / 0.59x, val 1.788 / 1.764). Most of
  that gain is the recipe's: nanoGPT itself with the short recipe takes 0.64-0.65x.

    python benchmarks/shakespeare_char.py --nanogpt ../peers/nanoGPT --arch gpt --recipes nanogpt --seeds 1337 1338 1339
    python benchmarks/shakespeare_char.py --nanogpt ../peers/nanoGPT --arch gpt --iters 200  # a quick look
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from llmos.config import ModelConfig
from llmos.model import CausalLM
from llmos.training import CausalLMObjective, TrainConfig, Trainer

SHARED = Path(__file__).resolve().parents[2] / "shared"  # ../shared from the repository root
GOAL_TIME_RATIO, GOAL_LOSS_MARGIN = 0.70, 0.03


class RandomWindows:
    """nanoGPT's sampler: batch_size random windows per step (seeded, resumable by count)."""

    def __init__(self, data: torch.Tensor, batch_size: int, context: int, seed: int) -> None:
        self.data, self.batch_size, self.context, self.seed = data, batch_size, context, seed
        self.generator = torch.Generator().manual_seed(seed)
        self.drawn = 0
        self.offsets = torch.arange(context)

    def __iter__(self):
        return self

    def __next__(self):
        starts = torch.randint(len(self.data) - self.context - 1, (self.batch_size,), generator=self.generator)
        self.drawn += 1
        index = starts[:, None] + self.offsets  # (B, T)
        return self.data[index], self.data[index + 1]

    def state_dict(self) -> dict:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)
        self.drawn = 0
        for _ in range(state["drawn"]):
            next(self)


ARCHITECTURES = {
    # nanoGPT's GPT: learned positions, LayerNorm without bias, exact GELU, no biases, tied embeddings.
    "nanoGPT GPT": dict(position="learned", norm="layernorm", mlp="gelu", norm_bias=False),
    # LLMOS' Llama-style block at the same size: RoPE, RMSNorm, SwiGLU with d_ff 341 so that
    # the MLP has the GELU MLP's parameter count (3 * 128 * 341 ~= 2 * 128 * 512).
    "Llama-style": dict(position="rope", norm="rmsnorm", mlp="swiglu", d_ff=341),
}
CONTEXT, BATCH, LAYERS, HEADS, DIMS = 64, 12, 4, 4, 128
REFERENCE = "nanogpt"
RECIPES = {
    # nanoGPT's CPU recipe: the reference that the goal is measured against.
    REFERENCE: dict(lr=1e-3, min_lr=1e-4, share=1.0),
    # A shorter schedule at a higher peak: 3x the learning rate, 5/8 of the iterations (1250 of 2000).
    "short": dict(lr=3e-3, min_lr=3e-4, share=0.625),
}


def recipe_iters(recipe: str, iters: int) -> int:
    """The recipe's iterations when nanoGPT's recipe has `iters`."""
    return round(iters * RECIPES[recipe]["share"])


def eval_interval(iters: int) -> int:
    """250 as in the recipe; a short run that 250 does not divide evaluates at its end only."""
    return 250 if iters % 250 == 0 else iters


def train_llmos(arch: str, recipe: str, seed: int, train_ids, val_ids, vocab: int, args) -> dict:
    """Train one LLMOS model with `recipe`; val loss on nanoGPT's 20 batches and on args.val_batches more."""
    iters, lr, min_lr = recipe_iters(recipe, args.iters), RECIPES[recipe]["lr"], RECIPES[recipe]["min_lr"]
    eval_source = RandomWindows(val_ids, BATCH, CONTEXT, seed=seed + 1)
    evals = [next(eval_source) for _ in range(20)]
    with tempfile.TemporaryDirectory() as out:
        start, cpu_start = time.perf_counter(), time.process_time()
        config = ModelConfig(vocab_size=vocab, d_model=DIMS, n_layers=LAYERS, n_heads=HEADS, max_seq_len=CONTEXT,
                             mlp_bias=False, qkv_bias=False, attn_out_bias=False, dropout=0.0,
                             tie_embeddings=True, **ARCHITECTURES[arch])
        torch.manual_seed(seed)
        model = CausalLM(config)
        train_config = TrainConfig(
            out_dir=out, context=CONTEXT, batch_size=BATCH, max_steps=iters, lr=lr, min_lr=min_lr,
            warmup_steps=100, beta1=0.9, beta2=0.99, weight_decay=0.1, grad_clip=1.0,
            eval_every=eval_interval(iters), eval_batches=20, log_every=50, seed=seed, progress=False,
            compile=args.compile,
        )
        objective = CausalLMObjective()
        trainer = Trainer(model, train_config, objective,
                          RandomWindows(train_ids, BATCH, CONTEXT, seed=seed), evals)
        setup = time.perf_counter() - start  # the evaluations' elapsed_s count from train(); the wall time from here
        result = trainer.train()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    # A less noisy estimate after training (not timed): more random validation windows, another seed.
    held_out = RandomWindows(val_ids, BATCH, CONTEXT, seed=seed + 2)
    model.eval()
    wide = objective.evaluate(model, [next(held_out) for _ in range(args.val_batches)])
    return {"run": f"LLMOS, {arch}", "recipe": recipe, "seed": seed, "params": model.num_parameters(), "seconds": seconds,
            "cpu": cpu_seconds, "val20": result.final_eval["val_loss"], "val_wide": wide["val_loss"],
            "curve": [(r["step"], r["val_loss"]) for r in result.evals],
            "timed_curve": [(setup + r["elapsed_s"], r["val_loss"]) for r in result.evals]}


# ---- nanoGPT, run as a subprocess on a temporary copy ---------------------------

NANOGPT_DRIVER = (
    "import runpy, sys, time, torch\n"
    "torch.set_num_threads(int(sys.argv[1]))\n"
    "sys.argv = ['train.py'] + sys.argv[2:]\n"
    "start, cpu_start = time.perf_counter(), time.process_time()\n"
    "runpy.run_path('train.py', run_name='__main__')\n"
    "print(f'NANOGPT_SECONDS {time.perf_counter() - start:.3f} {time.process_time() - cpu_start:.3f}', flush=True)\n"
)
NANOGPT_STEP = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)", re.M)


def prepare_nanogpt(source: Path, data: Path, workdir: Path) -> Path:
    """A copy of the nanoGPT checkout under `workdir`, with its shakespeare_char data built from `data`."""
    if not (source / "train.py").is_file() or not (source / "data" / "shakespeare_char" / "prepare.py").is_file():
        raise SystemExit(f"--nanogpt {source}: not a nanoGPT checkout (expected train.py and "
                         "data/shakespeare_char/prepare.py); clone karpathy/nanoGPT")
    copy = workdir / "nanoGPT"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns(".git", "out*", "*.bin", "*.pkl", "input.txt"))
    data_dir = copy / "data" / "shakespeare_char"
    shutil.copyfile(data, data_dir / "input.txt")  # prepare.py downloads only when input.txt is missing
    subprocess.run([sys.executable, "prepare.py"], cwd=data_dir, check=True, capture_output=True, text=True)
    return copy


def train_nanogpt(copy: Path, recipe: str, args) -> dict:
    """nanoGPT's train.py with `recipe`, in a subprocess; wall and CPU time from after `import torch` to the end."""
    iters, lr, min_lr = recipe_iters(recipe, args.iters), RECIPES[recipe]["lr"], RECIPES[recipe]["min_lr"]
    command = [
        sys.executable, "-c", NANOGPT_DRIVER, str(args.threads), "config/train_shakespeare_char.py",
        "--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1", f"--block_size={CONTEXT}",
        f"--batch_size={BATCH}", f"--n_layer={LAYERS}", f"--n_head={HEADS}", f"--n_embd={DIMS}",
        f"--max_iters={iters}", f"--lr_decay_iters={iters}", f"--learning_rate={lr}", f"--min_lr={min_lr}",
        "--dropout=0.0", f"--eval_interval={eval_interval(iters)}", f"--out_dir={copy / 'out'}",
    ]
    done = subprocess.run(command, cwd=copy, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"nanoGPT failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    seconds, cpu = map(float, re.search(r"NANOGPT_SECONDS ([\d.]+) ([\d.]+)", done.stdout).groups())
    steps = NANOGPT_STEP.findall(done.stdout)
    return {"run": "nanoGPT", "recipe": recipe, "seed": 1337, "params": None, "seconds": seconds, "cpu": cpu,
            "val20": float(steps[-1][2]), "val_wide": None,
            "curve": [(int(step), float(val)) for step, _, val in steps]}


# ---- the run --------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED / "data" / "tinyshakespeare.txt"))
    parser.add_argument("--nanogpt", default=None,
                        help="a nanoGPT checkout (e.g. ../peers/nanoGPT) to run side by side; without it "
                             "the ratio is unknown")
    parser.add_argument("--iters", type=int, default=2000, help="nanoGPT's recipe's iterations (the short "
                                                                "recipe runs 5/8 of them)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="torch.compile the LLMOS model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337],
                        help="one round per seed (LLMOS's seed; nanoGPT's is fixed at 1337)")
    parser.add_argument("--arch", choices=["gpt", "llama", "both"], default="gpt")
    parser.add_argument("--recipes", choices=list(RECIPES), nargs="+", default=list(RECIPES),
                        help="recipes that every run (nanoGPT's and LLMOS's) trains with; nanoGPT always "
                             "also runs its own recipe, the goal's reference")
    parser.add_argument("--val-batches", type=int, default=200,
                        help="batches of the extra, less noisy LLMOS validation estimate after training")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = Path(args.data)
    if not path.is_file():
        raise SystemExit(f"no data at {path}; pass --data PATH to tinyshakespeare.txt")
    text = path.read_text()
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([lookup[c] for c in text], dtype=torch.long)
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    archs = {"gpt": ["nanoGPT GPT"], "llama": ["Llama-style"], "both": list(ARCHITECTURES)}[args.arch]
    peer_recipes = [REFERENCE, *(r for r in args.recipes if r != REFERENCE)]
    with tempfile.TemporaryDirectory() as workdir:
        nanogpt = prepare_nanogpt(Path(args.nanogpt), path, Path(workdir)) if args.nanogpt else None
        rounds = []
        for index, seed in enumerate(args.seeds):
            jobs = [lambda arch=arch, recipe=recipe, seed=seed: train_llmos(arch, recipe, seed, train_ids, val_ids,
                                                                            len(chars), args)
                    for recipe in args.recipes for arch in archs]
            if nanogpt is not None:
                peers = [lambda recipe=recipe: train_nanogpt(nanogpt, recipe, args) for recipe in peer_recipes]
                jobs = [*peers, *jobs] if index % 2 == 0 else [*jobs, *peers]
            runs = []
            for job in jobs:
                run = job()
                runs.append(run)
                curve = " ".join(f"{step}:{loss:.3f}" for step, loss in run["curve"])
                print(f"[round {index + 1}, {run['run']}, {run['recipe']} recipe, seed {run['seed']}] "
                      f"{run['seconds']:.1f} s; val loss (20 batches) by step: {curve}", flush=True)
            rounds.append(runs)
    print_table(rounds, archs, args)


def time_to_reach(run: dict, target: float) -> float | None:
    """Seconds from the start of an LLMOS run to its first evaluation at or below `target`."""
    return next((seconds for seconds, loss in run["timed_curve"] if loss <= target), None)


def find(runs: list[dict], name: str, recipe: str) -> dict | None:
    return next((r for r in runs if r["run"] == name and r["recipe"] == recipe), None)


def print_table(rounds: list[list[dict]], archs: list[str], args) -> None:
    ran = "nanoGPT's train.py (subprocess) and the LLMOS trainer, alternating" if args.nanogpt else \
        "the LLMOS trainer only (no --nanogpt: no peer ran, the ratio is unknown)"
    recipes = "; ".join(f"{name}: lr {RECIPES[name]['lr']:g} -> {RECIPES[name]['min_lr']:g}, "
                        f"{recipe_iters(name, args.iters)} iterations" for name in RECIPES)
    print(f"\nwhat ran in this run: {ran}; threads {args.threads}, compile {args.compile}; recipes ({recipes}); "
          f"'val 20' = 20 random 12 x 64 validation windows at the end (nanoGPT's protocol), "
          f"'val {args.val_batches}' = {args.val_batches} other windows (LLMOS rows only)")
    print(f"| round | run | recipe | params | seed | val loss (20) | val loss ({args.val_batches}) | wall time (s) | "
          f"CPU time (s) | time vs nanoGPT, same recipe | time vs nanoGPT, nanoGPT's recipe |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for index, runs in enumerate(rounds, 1):
        reference = find(runs, "nanoGPT", REFERENCE)
        for r in runs:
            params = f"{r['params'] / 1e6:.2f}M" if r["params"] else "same as GPT"
            wide = f"{r['val_wide']:.3f}" if r["val_wide"] is not None else "-"
            peer = find(runs, "nanoGPT", r["recipe"])
            same = f"{r['seconds'] / peer['seconds']:.2f}x" if peer else "unknown (nanoGPT not run)"
            versus = f"{r['seconds'] / reference['seconds']:.2f}x" if reference else "unknown (nanoGPT not run)"
            print(f"| {index} | {r['run']} | {r['recipe']} | {params} | {r['seed']} | {r['val20']:.3f} | {wide} | "
                  f"{r['seconds']:.1f} | {r['cpu']:.1f} | {same} | {versus} |")
    for recipe in args.recipes:
        for arch in archs:
            name = f"LLMOS, {arch}, {recipe} recipe"
            pairs = [(find(runs, f"LLMOS, {arch}", recipe), find(runs, "nanoGPT", REFERENCE)) for runs in rounds]
            if pairs[0][1] is None:
                print(f"goal for {name}: unknown (nanoGPT did not run; pass --nanogpt PATH)")
                continue
            ratios = [mine["seconds"] / peer["seconds"] for mine, peer in pairs]
            reach = [time_to_reach(mine, peer["val20"] + GOAL_LOSS_MARGIN) for mine, peer in pairs]
            print(f"time for {name} to reach nanoGPT's final val loss (20) + {GOAL_LOSS_MARGIN} with nanoGPT's "
                  f"recipe (at an evaluation, seconds since its start / nanoGPT's whole run): "
                  + ", ".join("not reached" if s is None else f"{s:.1f} s = {s / peer['seconds']:.2f}x"
                              for s, (_, peer) in zip(reach, pairs, strict=True)))
            met = all(s is not None and s <= GOAL_TIME_RATIO * peer["seconds"]
                      for s, (_, peer) in zip(reach, pairs, strict=True))
            print(f"goal for {name} (reach it within {GOAL_TIME_RATIO:.2f}x of nanoGPT's wall time with its "
                  f"recipe, every round): {'met' if met else 'not met'}; whole-run time ratio median "
                  f"{statistics.median(ratios):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
    main()
