"""Layer 9: what the verbs share on the terminal: a progress bar, and warnings as one line each.

Library code (evaluation, workflows, data preparation) takes a (completed,
total) callback and raises warnings; it knows nothing of rich or stderr. The
verb decides to draw the bar (only when stderr is a terminal) and prints each
warning as `warning: ...`, never Python's file:line form.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(description: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A callback (completed, total) that drives a rich bar on stderr; None when disabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(completed: int, total: int) -> None:
            bar.update(task, completed=completed, total=total)

        yield update


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


@contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Inside, each warning goes to stderr as one line `warning: MESSAGE`."""
    with warnings.catch_warnings():
        warnings.showwarning = _print_warning
        yield
