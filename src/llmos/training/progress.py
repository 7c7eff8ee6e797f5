"""Layer 6: training progress: step, loss, tokens/s and MFU, and each evaluation.

On a terminal, a rich progress bar; otherwise (a log file, a pipe, the studio's
job.log) one plain line per logged step and per evaluation, flushed as written,
so a log shows the run as it goes. A no-op when disabled (non-main processes,
tests, `progress: false`).
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
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
        self.total_steps = total_steps
        self._stats = "loss ? | tok/s ? | MFU ?"
        self.plain = enabled and not Console().is_terminal  # lines, not a bar that shows only at the end
        if enabled and not self.plain:
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
        if self.enabled and not self.plain:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled and not self.plain:
            self._progress.__exit__(*exc)

    def update(self, step: int, loss: float, tokens_per_second: float, mfu: float) -> None:
        if self.enabled:
            self._stats = f"loss {loss:.4f} | {tokens_per_second:,.0f} tok/s | MFU {100 * mfu:.1f}%"
            if self.plain:
                self._line(f"step {step}/{self.total_steps} | {self._stats}")
            else:
                self._progress.update(self._task, completed=step, stats=self._stats)

    def evaluated(self, step: int, metrics: dict[str, Any]) -> None:
        if self.plain and metrics:
            shown = " | ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            self._line(f"eval at step {step}/{self.total_steps} | {shown}")

    def advance(self, step: int) -> None:
        if self.enabled and not self.plain:
            self._progress.update(self._task, completed=step)

    @staticmethod
    def _line(text: str) -> None:
        print(text, file=sys.stdout, flush=True)
