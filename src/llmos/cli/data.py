"""Layer 9 (cli): `llmos data prepare INPUTS... --out DIR` and `llmos data stdlib OUT`.

`prepare` tokenizes a corpus once into memory-mapped token shards for
`llmos pretrain`; `stdlib` writes the Python standard library's documentation
as a corpus, for trying things out with no data at hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from llmos.cli.console import warnings_as_lines
from llmos.data.corpus import DEFAULT_MAX_DOCUMENT_CHARS
from llmos.data.prepare import DEFAULT_SHARD_TOKENS, prepare
from llmos.data.stdlib_corpus import DEFAULT_MAX_BYTES, build_stdlib_corpus
from llmos.errors import LLMOSError
from llmos.tokenizer import TOKENIZER_KINDS

data_app = typer.Typer(
    help="Prepare pretraining data: corpora to token shards.", no_args_is_help=True
)


@data_app.command("prepare")
def prepare_command(
    inputs: list[str] = typer.Argument(
        ..., help="Corpus .txt/.jsonl files, folders (searched recursively) or globs."
    ),
    out: Path = typer.Option(..., "--out", help="Directory to write the shards into."),
    tokenizer: Path | None = typer.Option(
        None, help="Use this tokenizer directory instead of training one."
    ),
    tokenizer_kind: str = typer.Option(
        "bpe", help=f"Kind of tokenizer to train: {' | '.join(TOKENIZER_KINDS)}."
    ),
    vocab_size: int = typer.Option(8192, help="Vocabulary size of the trained tokenizer."),
    val_fraction: float = typer.Option(0.005, help="Fraction of documents held out."),
    text_field: str = typer.Option("text", help="Field of .jsonl records holding the text."),
    seed: int = typer.Option(0, help="Seed of the train/validation split."),
    shard_tokens: int = typer.Option(DEFAULT_SHARD_TOKENS, help="Tokens per shard file."),
    max_document_chars: int = typer.Option(
        DEFAULT_MAX_DOCUMENT_CHARS, help="Longer .txt files are cut at blank lines into documents."
    ),
    workers: int | None = typer.Option(None, help="Tokenizer threads (default: all cores)."),
) -> None:
    """Tokenize INPUTS into memory-mapped token shards in --out (with the tokenizer)."""
    if tokenizer is None and tokenizer_kind not in TOKENIZER_KINDS:
        raise LLMOSError(
            f"unknown --tokenizer-kind {tokenizer_kind!r}; valid: {', '.join(TOKENIZER_KINDS)}"
        )
    with warnings_as_lines():
        summary = prepare(
            inputs,
            out,
            tokenizer=tokenizer,
            tokenizer_kind=tokenizer_kind,
            vocab_size=vocab_size,
            val_fraction=val_fraction,
            seed=seed,
            shard_tokens=shard_tokens,
            workers=workers,
            text_field=text_field,
            max_document_chars=max_document_chars,
            progress=sys.stderr.isatty(),
        )
    print(summary.line())


@data_app.command("stdlib")
def stdlib_command(
    out: Path = typer.Argument(..., help="A folder (one file per module) or a .txt file."),
    max_bytes: int = typer.Option(DEFAULT_MAX_BYTES, help="Stop after this much text."),
) -> None:
    """Write the Python standard library's documentation as a text corpus."""
    paths = build_stdlib_corpus(out, max_bytes=max_bytes)
    size = sum(p.stat().st_size for p in paths)
    print(
        f"wrote {size:,} bytes of standard-library documentation in {len(paths)} file(s) to {out}"
    )


def register(app: typer.Typer) -> None:
    """Add the `data` command group to the llmos app."""
    app.add_typer(data_app, name="data")
