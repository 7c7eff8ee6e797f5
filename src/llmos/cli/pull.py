"""Layer 9: `llmos pull NAME`: LLMOS downloads nothing; say how to add a model to the models folder.

People coming from Ollama type `pull` first. LLMOS works offline, so the verb
(hidden from the help) answers with one line: NAME is here already, or how to
put a GGUF file or a Hugging Face model directory into the models folder
(`llmos.model_names.models_dir`, the folder `llmos models` lists) so that
`llmos chat NAME` finds it.
"""

from __future__ import annotations

import typer

from llmos.errors import LLMOSError


def pull_command(name: str = typer.Argument(..., help="The model you wanted to download.")) -> None:
    """LLMOS downloads no models: how to add one to the models folder."""
    from llmos.model_names import EMBEDDED, ModelNotFoundError, models_dir, resolve_model

    try:
        found = resolve_model(name)
    except ModelNotFoundError:
        if name in EMBEDDED:
            raise  # its message says how to install the embedded model
        folder, short = models_dir(), name.rstrip("/").rsplit("/", 1)[-1]  # the folder holds no sub-paths
        raise LLMOSError(
            f"LLMOS downloads no models (it works offline); to add {name!r}, put a GGUF file "
            f"({folder}/{short}.gguf, then: llmos chat {short}.gguf) or a Hugging Face model directory with "
            f"config.json, *.safetensors and tokenizer.json ({folder}/{short}/, then: llmos chat {short}) in "
            f"the models folder (LLMOS_MODELS_DIR moves it); llmos models lists what is there") from None
    typer.echo(f"{name} is already on this machine ({found.path}): llmos chat {name}")


def register(app: typer.Typer) -> None:
    app.command("pull", hidden=True)(pull_command)
