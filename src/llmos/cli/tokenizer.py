"""Layer 9 (cli): `llmos tokenizer train FILES... --kind bpe|wordpiece|char --vocab-size N --out DIR`.

Trains a new tokenizer on text files and writes it as a Hugging Face tokenizer
directory (tokenizer.json, tokenizer_config.json, special_tokens_map.json).
"""

from __future__ import annotations

from pathlib import Path

import typer

from llmos.tokenizer import TOKENIZER_KINDS, train_tokenizer_from_files

tokenizer_app = typer.Typer(help="Train and inspect tokenizers.", no_args_is_help=True)


@tokenizer_app.command("train")
def train(
    files: list[Path] = typer.Argument(..., help="UTF-8 text files to train on."),
    kind: str = typer.Option("bpe", help=f"Tokenizer kind: {' | '.join(TOKENIZER_KINDS)}."),
    vocab_size: int = typer.Option(8192, help="Largest vocabulary size, special tokens included."),
    min_frequency: int = typer.Option(2, help="Merges/pieces seen fewer times are not learned."),
    out: Path = typer.Option(..., help="Directory to write the tokenizer into."),
) -> None:
    """Train a tokenizer on FILES and save it to --out."""
    tokenizer = train_tokenizer_from_files(
        files, kind=kind, vocab_size=vocab_size, min_frequency=min_frequency
    )
    tokenizer.save_pretrained(out)
    specials = ", ".join(tokenizer.all_special_tokens)
    print(
        f"trained {kind} tokenizer: {len(tokenizer)} tokens (special: {specials}) from {len(files)} file(s) -> {out}"
    )


def register(app: typer.Typer) -> None:
    """Add the `tokenizer` command group to the llmos app."""
    app.add_typer(tokenizer_app, name="tokenizer")
