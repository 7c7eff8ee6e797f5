"""Layer 6: the training progress bar (rich): step, loss, tokens/s and MFU.

A no-op when disabled (non-main processes, tests, `progress: false`).
"""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    def __init__(self, total_steps: int, start_step: int = 0, enabled: bool = True,
                 description: str = "training") -> None:
        self.enabled = enabled
        self._stats = "loss ? | tok/s ? | MFU ?"
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
            )
            self._task = self._progress.add_task(description, total=total_steps, completed=start_step,
                                                 stats=self._stats)

    def __enter__(self) -> TrainingProgress:
        if self.enabled:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._progress.__exit__(*exc)

    def update(self, step: int, loss: float, tokens_per_second: float, mfu: float) -> None:
        if self.enabled:
            self._stats = f"loss {loss:.4f} | {tokens_per_second:,.0f} tok/s | MFU {100 * mfu:.1f}%"
            self._progress.update(self._task, completed=step, stats=self._stats)

    def advance(self, step: int) -> None:
        if self.enabled:
            self._progress.update(self._task, completed=step)
