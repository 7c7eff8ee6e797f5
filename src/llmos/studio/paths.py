"""Layer 8b: paths from requests stay inside the studio's folders.

`confined(path, roots)` resolves a user-given path (a relative one against each
root, then against the working folder, preferring one that exists) and refuses, with one clear message, anything that lands outside
every root, symlinks and `..` included.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from llmos.errors import LLMOSError


class StudioError(LLMOSError):
    """A studio request that cannot be done as asked; the message says why and what would be valid."""

    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def confined(path: str | Path, roots: Iterable[Path], what: str = "path", field: str | None = None) -> Path:
    roots = [Path(r).resolve() for r in roots]
    if not str(path).strip():
        raise StudioError(f"{what} is empty; give a path inside {_names(roots)}", field=field)
    given = Path(path).expanduser()
    if given.is_absolute():
        candidates = [given.resolve()]
    else:  # relative to a root ("shards"), or to the studio's working folder ("data/shards")
        candidates = [(root / given).resolve() for root in roots] + [given.resolve()]
    inside = [c for c in candidates if any(c == root or root in c.parents for root in roots)]
    if inside:
        return next((c for c in inside if c.exists()), inside[0])
    raise StudioError(f"{what} {str(path)!r} is outside the studio's folders {_names(roots)}", status=403,
                      field=field)


def _names(roots: list[Path]) -> str:
    return "[" + ", ".join(repr(str(r)) for r in roots) + "]"
