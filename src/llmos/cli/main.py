"""Layer 9: the `llmos` command: assembles the verbs and turns bad input into one line + exit 2.

Each verb lives in its own module `llmos.cli.<verb>` exposing `register(app)`;
adding a verb is adding its module name to VERB_MODULES. Registering must stay
cheap: a verb module imports torch, the model and the server inside its command
function, so `llmos --help`, `llmos VERB --help` and a mistyped flag answer at
once (tests/cli/test_cli_startup.py checks that torch stays unloaded).

Mistakes typer finds (an unknown verb, with its "did you mean" suggestion; a
flag out of its range) are printed as one line too, as LLMOS's own errors are.
"""

from __future__ import annotations

import importlib
import sys

import typer

import llmos
from llmos.errors import LLMOSError

VERB_MODULES: list[str] = ["quickstart", "pretrain", "generate", "convert", "quantize", "tokenizer", "serve", "chat",
                           "data", "models", "eval", "finetune", "teach-tools", "agent", "run", "studio", "pull"]

# The click exceptions typer raises: recent typer ships its own copy of click (typer._click), older
# versions use click itself; take them from wherever typer's own BadParameter comes from.
_click_errors = sys.modules[typer.BadParameter.__module__]

app = typer.Typer(
    name="llmos",
    help="LLMOS: train, adapt, run and serve open language models on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"llmos {llmos.__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """The options of `llmos` itself, before the verb (the help text is the app's)."""


for _name in VERB_MODULES:
    importlib.import_module(f"llmos.cli.{_name.replace('-', '_')}").register(app)


def fail(message: str) -> None:
    """Print one line on stderr and exit 2: the CLI's answer to bad input."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def usage_line(exc: Exception) -> str:
    """A click usage error (unknown verb or flag, bad value) as one line, with where to look."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
    return " ".join(exc.format_message().split()) + where


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except _click_errors.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `llmos` alone: typer has printed the help
            if exc.format_message().strip():
                typer.echo(exc.format_message())
            raise SystemExit(2) from None
        fail(usage_line(exc))
    except _click_errors.ClickException as exc:
        fail(" ".join(exc.format_message().split()))
    except typer.Abort:  # end of input at a prompt
        print("Aborted!", file=sys.stderr)
        raise SystemExit(1) from None
    except (LLMOSError, FileNotFoundError, NotADirectoryError) as exc:
        fail(" ".join(str(exc).split()))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
