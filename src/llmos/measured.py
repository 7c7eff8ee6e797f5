"""Layer 0: `measured_once(file, key, measure)`: a per-machine measurement, cached as JSON.

Some choices depend on the machine (the fp32 matmul peak MFU divides by, which
kernel wins for few-row matmuls). They are measured the first time they are
needed and kept in ~/.cache/llmos/<file> (LLMOS_CACHE_DIR overrides), keyed by
whatever the measurement depends on (device, thread count, torch version), so
each runs once per machine setting. An unwritable cache only costs a
re-measurement next time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmos.atomic_files import atomic_write_text


def cache_dir() -> Path:
    return Path(os.environ.get("LLMOS_CACHE_DIR") or Path.home() / ".cache" / "llmos")


def measured_once(file_name: str, key: str, measure: Callable[[], Any]) -> Any:
    """The cached value under `key` in `file_name`, measuring (and storing) it when absent."""
    path = cache_dir() / file_name
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if not isinstance(cached, dict):
        cached = {}
    if key not in cached:
        cached[key] = measure()
        try:
            atomic_write_text(path, json.dumps(cached, indent=2))
        except OSError:
            pass
    return cached[key]
