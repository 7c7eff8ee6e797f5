"""Layer 9: `llmos pretrain`: train a model from a YAML recipe, with CLI overrides.

The flags are generated from the `TrainConfig` dataclass fields (one source of
truth): `llmos pretrain --config recipes/x.yaml --max-steps 100` loads the
recipe and overrides one field. Under `torchrun --nproc_per_node N` the same
command trains data-parallel (DDP; `--distributed fsdp` for FSDP).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any, Optional

import typer

from llmos.training.recipe import RunConfig, TrainConfig

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def config_flags(cls: type[RunConfig] = TrainConfig) -> list[inspect.Parameter]:
    """One keyword parameter (a typer option defaulting to None = 'not given') per recipe field."""
    params = []
    defaults = cls()
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = _TYPES.get(str(f.type), str)
        default = getattr(defaults, f.name)
        if kind is bool:
            decl = f"{flag}/--no-{f.name.replace('_', '-')}"
        else:
            decl = flag
        help_text = f"(recipe field {f.name}; default {default!r})"
        if str(f.type).startswith("dict"):
            help_text = f"JSON object (recipe field {f.name}), e.g. '{{\"d_model\": 128}}'"
        params.append(inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, decl, help=help_text, show_default=False),
            annotation=Optional[kind],  # noqa: UP045 - typer needs a runtime type here
        ))
    return params


def load_config(recipe: Path | None, overrides: dict[str, Any], cls: type[RunConfig] = TrainConfig) -> RunConfig:
    base = cls.from_yaml(recipe) if recipe is not None else cls()
    return base.with_overrides(overrides)


def pretrain_command(config: Optional[Path] = None, **overrides: Any) -> None:  # noqa: UP045
    from rich.console import Console

    from llmos.training.run import pretrain

    train_config = load_config(config, overrides)
    result = pretrain(train_config)
    if result.run_dir is not None and int(__import__("os").environ.get("RANK", "0")) == 0:
        final = result.final_eval
        console = Console()
        line = f"trained {result.steps} steps in {result.seconds:.1f} s"
        if "val_loss" in final:
            line += f"; validation loss {final['val_loss']:.4f}, perplexity {final['val_perplexity']:.2f}"
        console.print(line)
        console.print(f"checkpoints: {result.run_dir / 'best'} (best), {result.run_dir / 'last'} (last)")


def register_recipe_verb(app: typer.Typer, name: str, cls: type[RunConfig], run: Any, doc: str) -> None:
    """A verb whose flags are `--config RECIPE` plus one per field of the recipe dataclass `cls`."""
    def command(**kwargs: Any) -> None:
        run(**kwargs)

    recipe_param = inspect.Parameter(
        "config", inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, "--config", help=f"YAML recipe of {cls.__name__} fields"),
        annotation=Optional[Path],  # noqa: UP045
    )
    command.__signature__ = inspect.Signature([recipe_param, *config_flags(cls)])
    command.__doc__ = doc
    app.command(name)(command)


def register(app: typer.Typer) -> None:
    register_recipe_verb(app, "pretrain", TrainConfig, pretrain_command,
                         "Pretrain a model from a YAML recipe (flags override recipe fields).")
