"""Layer 9: `llmos models`: the models this machine has, by the name and path that load them.

Lists the embedded model (`smollm2`, when its package is installed; otherwise a
line says how to install it), checkpoint directories and GGUF files in the
models folder (LLMOS_MODELS_DIR, or --models-dir), the Hugging Face cache, and
the GGUF files of Ollama's store (OLLAMA_MODELS, default ~/.ollama/models) and
LM Studio's models folder (~/.lmstudio/models), by the store names that load
them in place (`ollama:llama3.2:1b`, `lmstudio:PUBLISHER/REPO/FILE.gguf`), with
size, architecture and quantization read from each file's header (see
`llmos.model_names.local_models`).
An embedded model that ships a tool-use adapter (smollm2) gets a line saying
so: requests with tools decode through it by default (`--tools-adapter off`).
`llmos list` and `llmos ls` are the same verb.
"""

from __future__ import annotations

from pathlib import Path

import typer


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def models_command(
    models_dir: Path = typer.Option(None, "--models-dir", help="Models folder to list (default: LLMOS_MODELS_DIR "
                                                               "or ~/.cache/llmos/models)."),
) -> None:
    """List the models on this machine: name, size, architecture, quantization and path."""
    from rich.console import Console
    from rich.table import Table

    from llmos.errors import LLMOSError
    from llmos.model_names import EMBEDDED, local_models, shipped_tools_adapter
    from llmos.model_names import models_dir as default_models_dir

    if models_dir is not None and not models_dir.is_dir():
        raise LLMOSError(f"--models-dir {str(models_dir)!r} is not a directory")
    folder = models_dir if models_dir is not None else default_models_dir()
    found = local_models(models_folder=folder)
    console = Console(soft_wrap=True)
    table = Table(title=f"models (models folder: {folder})", title_justify="left")
    for column in ("name", "source", "size", "architecture", "quantization", "path"):
        table.add_column(column, justify="right" if column == "size" else "left", overflow="fold")
    for model in found:
        table.add_row(model.name, model.source, _size(model.size_bytes), model.architecture, model.quantization,
                      str(model.path))
    if found:
        console.print(table)
    else:
        console.print(f"no models found (models folder: {folder})")
    for name, embedded in EMBEDDED.items():
        if embedded.path() is None:
            console.print(f"{name} ({embedded.description}) is not installed; install it with: {embedded.install}",
                          highlight=False)
        elif (adapter := shipped_tools_adapter(embedded.path())) is not None:
            console.print(f"{name} ships a tool-use adapter ({adapter}): serve, agent and workflow requests with "
                          "tools decode through it (--tools-adapter off: the model alone)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("models")(models_command)
    for alias in ("list", "ls"):  # what Ollama users type; hidden, so the help and the docs list one verb
        app.command(alias, hidden=True)(models_command)
