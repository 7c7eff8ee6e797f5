"""What `dtype: auto` and `group_by_length` buy on the teach-tools training data, same run.

The data is what `recipes/teach-tools-smollm2.yaml` trains on: conversations from the tool
catalogue (seed 1337, the recipe's make-up; a general request's answer is one fixed sentence
here instead of the base model's own reply, to skip generating them), in SmolLM2's chat format.
Each setting runs `llmos.training.finetune` (LoRA as the recipe: rank 8 on every linear, batch 8)
for --steps steps in a process of its own, and reports seconds per step (the first step, which
warms up, left out) and the process's peak RSS:
- float32, random batches (what the recipe did before);
- `dtype: auto` (bf16 autocast where it measures faster on this machine), random batches;
- `dtype: auto` and `group_by_length: true` (the recipe now);
- the same with `lora_dropout: 0.05` (the recipe before: its dropout masks are CPU random numbers);
- the same with the adapters on the top 15 of SmolLM2's 30 blocks (`train_top: 15`: no backward
  pass below them).
Ratios are against the first row. Run:

    .venv/bin/python benchmarks/teach_tools_step.py [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "teach-tools-smollm2.yaml"
DROPOUT = yaml.safe_load(RECIPE.read_text())["lora_dropout"]
SETTINGS = (("float32, random batches", "float32", False, 0, DROPOUT),  # (label, dtype, grouped, top, dropout)
            ("auto, random batches", "auto", False, 0, DROPOUT),
            ("auto, grouped by length", "auto", True, 0, DROPOUT),
            ("auto, grouped, lora_dropout 0.05", "auto", True, 0, 0.05),
            ("auto, grouped, top 15 blocks", "auto", True, 15, DROPOUT))


def write_data(path: Path) -> int:
    from llmos.apps.builtin_tools import calculate
    from llmos.data.tool_catalogue import load_catalogue
    from llmos.data.tool_conversations import ToolData, ToolDataSpec

    recipe = yaml.safe_load(RECIPE.read_text())
    catalogue = load_catalogue()
    spec = ToolDataSpec(seed=recipe["seed"], conversations=recipe["conversations"], max_tools=recipe["max_tools"],
                        calls=recipe["calls"], cannot=recipe["cannot"])
    data = ToolData(catalogue.families, catalogue.pools, catalogue.chat, spec, calculate)
    answer = "Here is a short, friendly answer to your question, in two plain sentences. I hope it helps."
    records = data.training_records({q: answer for q in data.train_chat})
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return len(records)


def one_setting(data: str, out: str, dtype: str, grouped: bool, top: int, dropout: float, steps: int) -> dict:
    """Run in a process of its own: seconds per step after the first, and the peak RSS."""
    import torch

    from llmos.training.finetune import finetune
    from llmos.training.finetune_recipe import FinetuneConfig

    torch.set_num_threads(2)
    recipe = yaml.safe_load(RECIPE.read_text())
    config = FinetuneConfig(base_model="smollm2", data=data, task="chat", method="lora", context=recipe["context"],
                            batch_size=recipe["batch_size"], max_steps=steps, lr=recipe["lr"], warmup_steps=1,
                            lora_r=recipe["lora_r"], lora_alpha=recipe["lora_alpha"],
                            lora_dropout=dropout, val_fraction=0.0, eval_every=0, log_every=1,
                            progress=False, out_dir=out, dtype=dtype, group_by_length=grouped, seed=recipe["seed"],
                            train_top=top)
    finetune(config, report=lambda *_: None)
    logged = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    elapsed = [m["elapsed"] for m in logged if m.get("kind") == "train"]  # one entry a step (log_every 1)
    return {"seconds_per_step": (elapsed[-1] - elapsed[0]) / (len(elapsed) - 1),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--one", nargs=6, metavar=("DATA", "OUT", "DTYPE", "GROUPED", "TOP", "DROPOUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        data, out, dtype, grouped, top, dropout = args.one
        print(json.dumps(one_setting(data, out, dtype, grouped == "1", int(top), float(dropout), args.steps)))
        return
    from llmos.kernels.choice import bf16_products, cpu_name

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        count = write_data(data)
        measured = bf16_products()
        print(f"{cpu_name()}; 2 threads; {count} teach-tools conversations; {args.steps} steps of "
              f"{yaml.safe_load(RECIPE.read_text())['batch_size']}; bf16 autocast product "
              f"{measured['bf16_autocast_ms']:.2f} ms vs float32 {measured['fp32_ms']:.2f} ms "
              f"(dtype auto -> {'bf16' if measured['bf16_pays'] else 'float32'})", flush=True)
        rows = {}
        for i, (label, dtype, grouped, top, dropout) in enumerate(SETTINGS):
            done = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--one", str(data),
                                   str(Path(tmp) / f"run{i}"), dtype, "1" if grouped else "0", str(top), str(dropout)],
                                  capture_output=True, text=True, check=True)
            rows[label] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  {label:34} {rows[label]['seconds_per_step']:6.2f} s/step  peak RSS "
                  f"{rows[label]['peak_rss_gb']:5.1f} GB", flush=True)
    first = rows[SETTINGS[0][0]]["seconds_per_step"]
    print("speed-up against float32 with random batches (same run): "
          + ", ".join(f"{label} {first / r['seconds_per_step']:.2f}x" for label, r in rows.items()))


if __name__ == "__main__":
    main()
