"""The CLI reference, generated from the typer app at build time (a MkDocs hook).

`mkdocs.yml` names this file under `hooks:`; on the page holding the marker
`<!-- llmos-cli-reference -->` (docs/reference/cli.md) the marker is replaced
with one section per verb of `llmos.cli.main.app`: its help text, its usage
line, and a table of its arguments and options as `llmos VERB --help` shows
them. Nothing is copied by hand, so the page cannot drift from the code.

Run it as a script to print the generated markdown:
`.venv/bin/python docs/gen_cli.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MARKER = "<!-- llmos-cli-reference -->"


def root_command() -> tuple[Any, Any]:
    """The click command typer builds for `llmos`, and its context."""
    import typer

    from llmos.cli.main import app

    root = typer.main.get_command(app)
    return root, root.make_context("llmos", [], resilient_parsing=True)


def walk(command: Any, ctx: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """Every runnable verb under `command` as (path, command, context), in the app's order;
    a group (`llmos tokenizer`, `llmos data`) yields its subcommands."""
    names = command.list_commands(ctx) if hasattr(command, "list_commands") else []
    if not names:
        yield path, command, ctx
        return
    for name in names:
        sub = command.get_command(ctx, name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        sub_ctx = sub.make_context(name, [], parent=ctx, resilient_parsing=True)
        yield from walk(sub, sub_ctx, (*path, name))


def usage(path: tuple[str, ...], command: Any) -> str:
    pieces = ["llmos", *path, "[OPTIONS]"]
    for param in command.params:
        if param.param_type_name != "argument":
            continue
        name = param.name.upper() + ("..." if param.nargs == -1 else "")
        pieces.append(name if param.required else f"[{name}]")
    return " ".join(pieces)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def verb_markdown(path: tuple[str, ...], command: Any, ctx: Any) -> str:
    lines = [f"## `llmos {' '.join(path)}`", "", (command.help or "").strip(), "",
             "```text", usage(path, command), "```", ""]
    rows = []
    for param in command.params:
        record = param.get_help_record(ctx)
        if record is None:  # a hidden option
            continue
        name, text = record
        if param.param_type_name == "argument":  # shown as in the usage line: CHECKPOINT, FILES...
            name = param.name.upper() + ("..." if param.nargs == -1 else "")
        rows.append((name, text))
    if rows:
        lines += ["| argument / option | description |", "|---|---|"]
        for name, text in rows:
            lines.append(f"| `{_cell(name)}` | {_cell(text)} |")
        lines.append("")
    return "\n".join(lines)


def cli_reference() -> str:
    """The markdown for every verb of the `llmos` command."""
    root, ctx = root_command()
    sections = [verb_markdown(path, command, sub_ctx) for path, command, sub_ctx in walk(root, ctx)]
    return "\n".join(sections)


def verbs() -> list[str]:
    """Every verb's name as typed (`generate`, `tokenizer train`, ...), for the tests."""
    root, ctx = root_command()
    return [" ".join(path) for path, _, _ in walk(root, ctx)]


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: fill the CLI reference page."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())


if __name__ == "__main__":
    print(cli_reference())
