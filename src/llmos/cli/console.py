"""Layer 9: the progress bar the verbs share: a rich bar on stderr driven by a (completed, total) callback.

Library code (evaluation, workflows) takes such a callback and knows nothing of
rich; the verb decides whether to draw it (only when stderr is a terminal).
"""

from __future__ import annotations

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
