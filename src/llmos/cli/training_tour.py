"""Layer 9: `llmos quickstart --train`: from nothing to a model that writes, in 4-5 minutes, offline.

With no other arguments it builds a corpus from the Python standard library's own
documentation (so no download is needed; `--data` uses your text instead),
trains a byte-level BPE tokenizer, trains a small Llama-shaped causal LM for
`--minutes`, reports validation perplexity, prints samples with the usual
sampling settings (do_sample, top_k=50, top_p=0.95), saves a checkpoint
directory that every other verb reads, and prints the next commands.

Sizing: the model and step count were chosen for the lowest validation loss
reachable in 3 minutes of training on a 2-core CPU. The number of steps is
calibrated from a few timed steps so the cosine schedule ends when time does
(a busy machine fits fewer steps, and learns less, in the same time). With the
corpus, the tokenizer and the samples the tour takes 4-5 minutes on 2 cores.
"""

from __future__ import annotations

import time
from pathlib import Path

QUICKSTART_MODEL = dict(
    d_model=192, n_layers=4, n_heads=6, n_kv_heads=6, d_ff=512, max_seq_len=512,
    position="rope", norm="rmsnorm", norm_bias=False, mlp="swiglu", mlp_bias=False,
    qkv_bias=False, attn_out_bias=False, tie_embeddings=True,
)
PROMPTS = ("The", "Return the", "This module")


def training_tour(data: Path | None = None, out: Path = Path("runs/quickstart"), minutes: float = 3.0,
                  max_steps: int | None = None, vocab_size: int = 4096, corpus_mb: float = 4.0,
                  context: int = 256, batch_size: int = 16, sample_tokens: int = 80, seed: int = 1337) -> None:
    """Build a corpus, train a tokenizer and a small model, show samples, save a checkpoint."""
    import torch
    from rich.console import Console

    from llmos.data import prepare
    from llmos.errors import LLMOSError
    from llmos.training.recipe import TrainConfig
    from llmos.training.run import pretrain

    console = Console()
    started = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out.mkdir(parents=True, exist_ok=True)
    if minutes <= 0 and max_steps is None:
        raise LLMOSError(f"--minutes={minutes} must be > 0 (or give --max-steps)")

    if data is None:
        from llmos.data.stdlib_corpus import build_stdlib_corpus

        console.print(f"[bold]1/4[/] building a corpus from the Python standard library docs (~{corpus_mb:g} MB)")
        inputs = build_stdlib_corpus(out / "corpus", max_bytes=int(corpus_mb * 1e6))
    else:
        if not data.exists():
            raise LLMOSError(f"--data {str(data)!r} does not exist; give a text file or a folder of them")
        console.print(f"[bold]1/4[/] using {data}")
        inputs = [data]
    console.print(f"[bold]2/4[/] training a {vocab_size}-token BPE tokenizer and tokenizing")
    summary = prepare(inputs, out / "data", vocab_size=vocab_size, val_fraction=0.02, seed=seed,
                      progress=False)
    console.print(f"    {summary.tokens['train']:,} training tokens, {summary.tokens['val']:,} validation tokens")

    overrides = dict(QUICKSTART_MODEL)
    budget = minutes * 60.0
    steps = max_steps or _calibrate_steps(overrides, summary.vocab_size, context, batch_size,
                                          budget, console)
    config = TrainConfig(
        data_dir=str(out / "data"), out_dir=str(out), model="nano", model_overrides=overrides,
        context=context, batch_size=batch_size, max_steps=steps,
        max_minutes=0.0 if max_steps else minutes * 1.1, lr=2e-3, min_lr=2e-4,
        warmup_steps=max(1, min(50, steps // 10)), weight_decay=0.1, beta2=0.99,
        eval_every=max(1, steps // 4), eval_batches=8, log_every=5, seed=seed,
    )
    console.print(f"[bold]3/4[/] training {steps} steps (~{minutes:g} min)")
    result = pretrain(config)
    final = result.final_eval
    if final:
        console.print(f"    validation loss {final['val_loss']:.3f}, perplexity {final['val_perplexity']:.1f}")
    else:
        console.print("    no validation perplexity: the corpus is too small for a validation split")

    console.print("[bold]4/4[/] saving and sampling")
    model, tokenizer = _export_best(out)
    torch.manual_seed(seed)
    for prompt in PROMPTS:
        ids = torch.tensor([tokenizer.encode(prompt)])
        output = model.generate(ids, do_sample=True, top_k=50, top_p=0.95, max_new_tokens=sample_tokens)
        text = tokenizer.decode(output[0].tolist(), skip_special_tokens=True)
        console.rule(f"sample: {prompt!r}")
        console.print(text, markup=False, highlight=False)
    console.rule()
    console.print(f"saved {out} in {time.perf_counter() - started:.0f} s. Next:", soft_wrap=True)
    for command in (f"generate {out} --prompt 'Return the'", f"chat {out}", f"serve {out}"):
        console.print(f"  llmos {command}", soft_wrap=True, highlight=False)
    console.print("  llmos chat smollm2      # a real instruct model, embedded (SmolLM2-135M-Instruct)",
                  soft_wrap=True, highlight=False)


def _calibrate_steps(overrides, vocab_size, context, batch_size, budget_s, console) -> int:
    """Time a few optimizer steps on random data; return how many fit in the budget."""
    import torch

    from llmos.config import ModelConfig
    from llmos.model import CausalLM
    from llmos.training.objectives import CausalLMObjective
    from llmos.training.optim import build_optimizer

    model = CausalLM(ModelConfig.from_preset("nano", vocab_size=vocab_size, **overrides))
    optimizer = build_optimizer(model, 1e-3, 0.1)
    x = torch.randint(0, vocab_size, (batch_size, context))
    objective, times = CausalLMObjective(), []
    for _ in range(4):
        start = time.perf_counter()
        objective.loss(model, (x, x)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    step_s = sorted(times[1:])[1]
    # ~8% of the time goes to evaluation, checkpoints and logging.
    steps = max(10, int(0.92 * budget_s / step_s))
    console.print(f"    {step_s * 1000:.0f} ms per step of {batch_size}x{context} tokens")
    return steps


def _export_best(out: Path):
    """Copy the best checkpoint's model and tokenizer to the run directory itself."""
    from llmos.generation.loading import load_model
    from llmos.training.run import load_data_tokenizer

    best = out / "best" if (out / "best").is_dir() else out / "last"
    model = load_model(best, tokenizer=False).model
    tokenizer = load_data_tokenizer(best)
    # save_pretrained replaces its target directory whole; the run directory also holds the
    # corpus, shards, metrics and trainer checkpoints, so write aside and move the files in.
    staging = out / ".export"
    model.save_pretrained(staging, tokenizer=tokenizer)
    for path in staging.iterdir():
        path.replace(out / path.name)
    staging.rmdir()
    return model, tokenizer

