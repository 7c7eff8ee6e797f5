"""Fine-tuning speed: LLMOS's trainer against PEFT + transformers on SmolLM2-135M, same data and batch.

Both sides train the same weights, the embedded SmolLM2-135M-Instruct: LLMOS
reads the GGUF file, and transformers reads a Hugging Face copy written once with
`llmos convert smollm2 --to hf`. They train on the same batches: chat examples of the
meeting-extraction task (benchmarks/make_meeting_data.py) in SmolLM2's chat
template, the loss on the assistant turn only, with AdamW at the same learning
rate and gradient clipping. Tokens/s counts every input token of a batch.
- lora: rank 8, alpha 16, dropout 0.05, on every linear of the blocks ("all-linear").
  PEFT's side is `get_peft_model` on the transformers model.
- full: every parameter trains.
LLMOS's side is `Trainer.train()` (`llmos finetune` runs the same loop, evaluation
off), with its tokens/s taken after the warm-up steps. The transformers side is a
plain loop of forward (labels given), backward and optimizer step, timed over
the same number of steps. Our goal: >= 1.5x. Run:

    .venv/bin/python benchmarks/finetune_speed.py [--batch-size 8] [--steps 6] [--warmup 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

LORA = dict(r=8, alpha=16.0, dropout=0.05)


def batches(tokenizer, batch_size: int, count: int, tmp: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` batches of (ids, labels), right-padded: chat examples of the meeting-extraction task
    (benchmarks/make_meeting_data.py) rendered with SmolLM2's chat template, labels on the
    assistant turn only, as `llmos finetune` builds them."""
    sys.path.insert(0, str(Path(__file__).parent))
    from make_meeting_data import make_meeting_data

    from llmos.data.sft import IGNORE_INDEX, pad_id_of, read_examples

    train, _ = make_meeting_data(tmp / "data", n_train=batch_size * count, n_test=1, seed=0)
    examples = read_examples(train, tokenizer, context=256, fmt="chat")
    pad = pad_id_of(tokenizer)
    out = []
    for i in range(count):
        rows = examples[i * batch_size:(i + 1) * batch_size]
        width = max(len(r.ids) for r in rows)
        ids = torch.full((batch_size, width), pad)
        labels = torch.full((batch_size, width), IGNORE_INDEX)
        for j, r in enumerate(rows):
            ids[j, :len(r.ids)], labels[j, :len(r.ids)] = torch.tensor(r.ids), torch.tensor(r.labels)
        out.append((ids, labels))
    return out


class Fixed:
    """The trainer's (x, y) batches: x = ids[:-1], y = labels[1:] (the next token where learned)."""

    def __init__(self, rows) -> None:
        self.rows, self.i = rows, 0

    def __iter__(self):
        return self

    def __next__(self):
        ids, labels = self.rows[self.i % len(self.rows)]
        self.i += 1
        return ids[:, :-1], labels[:, 1:]


def llmos_tokens_per_second(method: str, rows, args, out: Path) -> float:
    from llmos.auto import AutoModelForCausalLM
    from llmos.training.finetune import apply_method
    from llmos.training.finetune_recipe import FinetuneConfig
    from llmos.training.objectives import CausalLMObjective
    from llmos.training.trainer import Trainer

    steps = args.warmup + args.steps
    config = FinetuneConfig(base_model="smollm2", data="-", method=method, lora_r=LORA["r"],
                            lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"], lora_targets="all-linear",
                            max_steps=steps, batch_size=args.batch_size, context=256, lr=1e-4,
                            warmup_steps=0, eval_every=0, log_every=1, progress=False,
                            out_dir=str(out / f"llmos-{method}"))
    model = AutoModelForCausalLM.from_pretrained("smollm2", quantize="none").train()
    apply_method(model, config)
    Trainer(model, config, CausalLMObjective(), Fixed(rows)).train()
    logged = [json.loads(line) for line in (out / f"llmos-{method}" / "metrics.jsonl").read_text().splitlines()]
    per_step = [r["tokens_per_second"] for r in logged if r["kind"] == "train"][args.warmup:]
    tokens = [rows[i % len(rows)][0][:, :-1].numel() for i in range(args.warmup, args.warmup + args.steps)]
    return sum(tokens) / sum(n / tps for n, tps in zip(tokens, per_step, strict=True))  # tokens / time


def hf_tokens_per_second(method: str, rows, args, hf_dir: Path) -> float:
    import transformers

    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).train()
    if method == "lora":
        import peft

        model = peft.get_peft_model(model, peft.LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"],
                                                           lora_dropout=LORA["dropout"],
                                                           target_modules="all-linear", task_type="CAUSAL_LM"))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, fused=True)
    start, tokens = None, 0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            start = time.perf_counter()
        ids, labels = rows[step % len(rows)]
        x, y = ids[:, :-1], labels[:, :-1]  # the same input tokens as LLMOS's side; labels shift inside
        loss = model(input_ids=x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += x.numel() if step >= args.warmup else 0
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6, help="measured steps")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--methods", default="lora,full")
    args = parser.parse_args()
    from llmos.auto import AutoTokenizer
    from llmos.cli.convert import convert_command

    tokenizer = AutoTokenizer.from_pretrained("smollm2")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = batches(tokenizer, args.batch_size, args.warmup + args.steps, tmp)
        learned = sum(int((y != -100).sum()) for _, y in rows) / sum(y.numel() for _, y in rows)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; SmolLM2-135M, batches of "
              f"{args.batch_size} chat examples (~{rows[0][0].shape[1]} tokens, {100 * learned:.0f}% of them "
              f"learned), {args.warmup} warm-up + {args.steps} measured steps")
        convert_command("smollm2", tmp / "hf", to="hf", dtype="float32", max_shard_size="2GB", merge_lora=False)
        print("what ran in this run: both columns, in this run, on the same batches")
        print(f"{'method':<8}{'LLMOS tok/s':>14}{'PEFT+transformers tok/s':>26}{'ratio':>8}")
        for method in args.methods.split(","):
            ours = llmos_tokens_per_second(method, rows, args, tmp)
            theirs = hf_tokens_per_second(method, rows, args, tmp / "hf")
            peer = "PEFT+transformers" if method == "lora" else "transformers"
            print(f"{method:<8}{ours:>14.1f}{theirs:>26.1f}{ours / theirs:>7.2f}x   ({peer})", flush=True)


if __name__ == "__main__":
    main()
