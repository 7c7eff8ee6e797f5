"""Layer 9: `llmos convert SOURCE OUT --to hf|llmos`: rewrite a checkpoint for transformers or LLMOS.

SOURCE is a checkpoint directory, a GGUF file or an embedded model's name
(`smollm2`); a GGUF source is dequantized to float.

The output holds config.json, model.safetensors (sharded above --max-shard-size),
generation_config.json and the tokenizer files of the source. A model whose
configuration has no transformers equivalent is refused with one line naming
the field.
"""

from __future__ import annotations

from pathlib import Path

import typer


def convert_command(
    checkpoint: str = typer.Argument(..., help="Source: checkpoint directory (ours or transformers'), GGUF file, "
                                          "or model name (smollm2)."),
    out: Path = typer.Argument(..., help="Output directory (replaced atomically if it exists)."),
    to: str = typer.Option("hf", "--to", help="Target format: hf (transformers) or llmos."),
    dtype: str = typer.Option("auto", help="Weights dtype: auto (as stored), float32, bfloat16 or float16."),
    max_shard_size: str = typer.Option("2GB", help="Shard the weights above this size, e.g. 500MB, 2GB."),
) -> None:
    """Convert a checkpoint directory to another format."""
    from llmos.checkpoint.convert import convert_checkpoint, parse_size
    from llmos.model_names import resolve_model

    source = resolve_model(checkpoint).path
    written = convert_checkpoint(source, out, to=to, dtype=dtype, max_shard_bytes=parse_size(max_shard_size))
    typer.echo(f"wrote {to} checkpoint to {written}")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert_command)
