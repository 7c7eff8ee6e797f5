"""Layer 9: `llmos teach-tools`: teach a model your tools, from their definitions, by LoRA.

`llmos teach-tools --tools tools.json [--examples requests.jsonl]` (or
`--tools my_tools.py`, whose typed functions are the tools) generates
conversations for those tools and the catalogue's, measures the model on
held-out requests and tools, trains a LoRA adapter (PEFT format) and measures
again; `--config recipes/teach-tools-smollm2.yaml` is the recipe of the
adapter LLMOS ships. The flags are the `TeachToolsConfig` fields (the
fine-tuning ones included), as for `llmos finetune`. It is a verb of its own,
not a finetune recipe kind: it generates its data, and it reads tools and
example requests, which a finetune run does not take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from llmos.apps.teach_tools_recipe import TeachToolsConfig
from llmos.cli.pretrain import load_config, register_recipe_verb


def teach_tools_command(config: Optional[Path] = None, **overrides: Any) -> None:  # noqa: UP045
    from rich.console import Console

    from llmos.apps.teach_tools import teach_tools

    console = Console(highlight=False, soft_wrap=True)
    teach_tools(load_config(config, overrides, TeachToolsConfig), report=console.print)


def register(app: typer.Typer) -> None:
    register_recipe_verb(app, "teach-tools", TeachToolsConfig, teach_tools_command,
                         "Teach a model to call your tools (JSON or Python) by LoRA, with a before/after report.")
