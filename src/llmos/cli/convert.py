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
    merge_lora: bool = typer.Option(False, "--merge-lora", help="SOURCE is a LoRA adapter directory: write its "
                                    "base model with the adapter merged into the weights."),
) -> None:
    """Convert a checkpoint directory to another format."""
    from llmos.checkpoint.convert import convert_checkpoint, parse_size
    from llmos.model_names import resolve_model

    if merge_lora:
        written = merge_adapter(Path(checkpoint), out, to, dtype, parse_size(max_shard_size))
        typer.echo(f"wrote {to} checkpoint with the adapter merged to {written}")
        return

    source = resolve_model(checkpoint).path
    written = convert_checkpoint(source, out, to=to, dtype=dtype, max_shard_bytes=parse_size(max_shard_size))
    typer.echo(f"wrote {to} checkpoint to {written}")


def merge_adapter(adapter_dir: Path, out: Path, to: str, dtype: str, max_shard_bytes: int) -> Path:
    """Base + LoRA adapter -> one plain checkpoint whose weights include the adapter."""
    from llmos.adapters import merge_lora
    from llmos.auto import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from llmos.checkpoint import export_hf
    from llmos.checkpoint.peft_format import adapter_head_shape, is_adapter_dir
    from llmos.errors import LLMOSError

    if to not in ("hf", "llmos"):
        raise LLMOSError(f"--to {to!r} is not valid; expected 'hf' or 'llmos'")
    if not is_adapter_dir(adapter_dir):
        raise LLMOSError(f"--merge-lora needs a LoRA adapter directory (adapter_config.json + "
                         f"adapter_model.safetensors); {str(adapter_dir)!r} is not one")
    auto = AutoModelForSequenceClassification if adapter_head_shape(adapter_dir)[0] else AutoModelForCausalLM
    model = auto.from_pretrained(adapter_dir, dtype=None if dtype == "auto" else dtype, quantize="none",
                                 kernels=False)  # float weights: a GGUF base's blocks are dequantized to merge into
    model = merge_lora(model)
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    generation = getattr(model, "generation_config", None)
    if to == "hf":
        return export_hf(model, out, max_shard_bytes=max_shard_bytes, tokenizer=tokenizer,
                         generation_config=generation)
    model.save_pretrained(out, tokenizer=tokenizer, generation_config=generation, max_shard_bytes=max_shard_bytes)
    return out


def register(app: typer.Typer) -> None:
    app.command("convert")(convert_command)
