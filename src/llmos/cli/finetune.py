"""Layer 9: `llmos finetune`: adapt any loadable model from a YAML recipe, with CLI overrides.

`llmos finetune --config recipe.yaml --max-steps 100`: the flags are the
`FinetuneConfig` fields (one source of truth with the recipe), as for
`llmos pretrain`. Methods: lora (adapter only, PEFT format), freeze, full.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from llmos.cli.pretrain import load_config, register_recipe_verb
from llmos.training.finetune_recipe import FinetuneConfig


def finetune_command(config: Optional[Path] = None, **overrides: Any) -> None:  # noqa: UP045
    from rich.console import Console

    from llmos.training.finetune import finetune

    console = Console()
    run_config = load_config(config, overrides, FinetuneConfig)
    result = finetune(run_config, report=console.print)
    if result.run_dir is None or int(os.environ.get("RANK", "0")) != 0:
        return
    final = result.final_eval
    line = f"trained {result.steps} steps in {result.seconds:.1f} s"
    if "val_accuracy" in final:
        line += f"; validation loss {final['val_loss']:.4f}, accuracy {final['val_accuracy']:.4f}"
    elif "val_loss" in final:
        line += f"; validation loss {final['val_loss']:.4f}, perplexity {final['val_perplexity']:.2f}"
    console.print(line)
    best = result.run_dir / "best"
    what = "LoRA adapter (PEFT format)" if run_config.method == "lora" else "checkpoint"
    console.print(f"{what}: {best} (best), {result.run_dir / 'last'} (last)")
    console.print(f"try it: llmos chat {best}" if run_config.task != "classification"
                  else f"evaluate it: llmos eval {best} --data {run_config.val_data or run_config.data}")


def register(app: typer.Typer) -> None:
    register_recipe_verb(app, "finetune", FinetuneConfig, finetune_command,
                         "Fine-tune a model (lora, freeze or full) from a YAML recipe (flags override recipe fields).")
