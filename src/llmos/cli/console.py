"""Layer 9: what the verbs share on the terminal: progress (done, time left), and warnings as one line each.

Library code (evaluation, workflows, data preparation) takes a (completed,
total) callback and raises warnings; it knows nothing of rich or stderr. The
verb decides to draw the bar (only when stderr is a terminal) and prints each
warning as `warning: ...`, never Python's file:line form. Where a run is long
whatever the terminal (a workflow's items take seconds each), `progress_report`
prints a line per update when stderr is a file or a pipe, so a log shows how far
it got and how long is left instead of nothing.
"""

from __future__ import annotations

import sys
import time
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
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("left"), TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(completed: int, total: int) -> None:
            bar.update(task, completed=completed, total=total)

        yield update


def duration(seconds: float) -> str:
    """3 s, 2 min 05 s, 1 h 02 min."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressLines:
    """A (completed, total) callback that prints `NAME: 3/10 items, 12 s, about 28 s left` on stderr.

    The first call is the starting point (items finished by an earlier run count
    as done, not towards the rate); the time left is the rate since then times
    what remains."""

    def __init__(self, description: str, unit: str = "item") -> None:
        self.description, self.unit = description, unit
        self.started: float | None = None
        self.first = 0

    def __call__(self, completed: int, total: int) -> None:
        now = time.perf_counter()
        if self.started is None:
            self.started, self.first = now, completed
            done_before = f", {completed} done before" if completed else ""
            print(f"{self.description}: {total} {self.unit}(s){done_before}", file=sys.stderr, flush=True)
            return
        elapsed = now - self.started
        line = f"{self.description}: {completed}/{total} {self.unit}(s), {duration(elapsed)}"
        if completed < total and completed > self.first:
            left = elapsed / (completed - self.first) * (total - completed)
            line += f", about {duration(left)} left"
        print(line, file=sys.stderr, flush=True)


@contextmanager
def progress_report(description: str, unit: str = "item") -> Iterator[Callable[[int, int], None]]:
    """Progress of a long run on stderr: a bar with the time left on a terminal, else a line per update."""
    if sys.stderr.isatty():
        with progress_bar(description, True) as update:
            yield update
    else:
        yield ProgressLines(description, unit)


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


@contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Inside, each warning goes to stderr as one line `warning: MESSAGE`."""
    with warnings.catch_warnings():
        warnings.showwarning = _print_warning
        yield
