"""Layer 8b: the studio's settings: where runs, models and data live, and who may use it.

Every path a request names must resolve inside one of these folders
(`studio.paths.confined`); `api_key`, when set, is required on every route.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class StudioSettings:
    runs_dir: Path = Path("runs")  # every run (pretrain, finetune) is a folder here; new runs start here
    models_dir: Path | None = None  # local models (`llmos models`); None = LLMOS_MODELS_DIR or ~/.cache/llmos/models
    data_dirs: tuple[Path, ...] = field(default_factory=lambda: (Path("."),))  # where data paths may point
    api_key: str | None = None  # required on every route when set (Bearer header, or the page's cookie)
    host: str = "127.0.0.1"
    port: int = 8500

    def resolved(self) -> StudioSettings:
        """The same settings with absolute folders (the runs folder is created)."""
        from llmos.model_names import models_dir as default_models_dir

        runs = self.runs_dir.expanduser().resolve()
        runs.mkdir(parents=True, exist_ok=True)
        models = (self.models_dir or default_models_dir()).expanduser().resolve()
        data = tuple(d.expanduser().resolve() for d in self.data_dirs)
        return StudioSettings(runs, models, data, self.api_key, self.host, self.port)
