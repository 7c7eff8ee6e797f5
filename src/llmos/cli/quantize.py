"""Layer 9: `llmos quantize SOURCE OUT --to int8|int4`: write a weight-only quantized checkpoint.

SOURCE is a checkpoint directory, a GGUF file or a model name (`smollm2`); OUT
is an ordinary checkpoint directory that `llmos generate|chat|serve` and
`from_pretrained` load straight into the quantized kernels. See
`llmos.checkpoint.quantize` for what is kept and `llmos.checkpoint.quantization`
for the on-disk layout.
"""

from __future__ import annotations

from pathlib import Path

import typer


def quantize_command(
    source: str = typer.Argument(..., help="Float checkpoint directory, GGUF file, or model name (smollm2)."),
    out: Path = typer.Argument(..., help="Output directory (replaced atomically if it exists)."),
    to: str = typer.Option(..., "--to", help="int8 (one scale per output row) or int4 (groups of 32 inputs)."),
) -> None:
    """Quantize a model's linear layers to int8 or int4 and save it as a checkpoint directory."""
    from llmos.checkpoint.quantize import quantize_checkpoint
    from llmos.checkpoint.safetensors_io import CheckpointError
    from llmos.kernels import METHODS
    from llmos.model_names import resolve_model

    if to not in METHODS:  # before loading anything
        raise CheckpointError(f"--to {to!r} is not a quantization method; expected one of {list(METHODS)}")
    written = quantize_checkpoint(resolve_model(source).path, out, to)
    size = sum(p.stat().st_size for p in written.iterdir() if p.is_file())
    typer.echo(f"wrote {to} checkpoint to {written} ({size / 2**20:.1f} MiB)")


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize_command)
