"""Layer 9: the `llmos` command: assembles the verbs and turns bad input into one line + exit 2.

Each verb lives in its own module `llmos.cli.<verb>` exposing `register(app)`;
adding a verb is adding its module name to VERB_MODULES.
"""

from __future__ import annotations

import importlib
import sys

import typer

from llmos.errors import LLMOSError

VERB_MODULES: list[str] = ["quickstart", "pretrain", "generate", "convert", "quantize", "tokenizer", "serve", "chat",
                           "data", "models", "eval", "finetune", "agent", "run", "studio"]

app = typer.Typer(
    name="llmos",
    help="LLMOS: train, adapt, run and serve open language models on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _name in VERB_MODULES:
    importlib.import_module(f"llmos.cli.{_name}").register(app)


def fail(message: str) -> None:
    """Print one line on stderr and exit 2: the CLI's answer to bad input."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    try:
        app()
    except (LLMOSError, FileNotFoundError, NotADirectoryError) as exc:
        fail(" ".join(str(exc).split()))
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
