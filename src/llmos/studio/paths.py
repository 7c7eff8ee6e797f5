"""Layer 8b: paths from requests stay inside the studio's folders.

`confined(path, roots)` resolves a user-given path (a relative one against each
root, then against the working folder, preferring one that exists) and refuses, with one clear message, anything that lands outside
every root, symlinks and `..` included. A path the system cannot use at all (a
NUL byte, more than `MAX_PATH_CHARS` characters, a name too long for the file
system, `~nosuchuser`) is a 400 too, never a 500; messages quote a long value
cut (`quoted`), so a request cannot make the studio echo megabytes back.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from llmos.errors import LLMOSError

MAX_PATH_CHARS = 4096  # Linux's PATH_MAX: no longer path can be opened
SHOWN_CHARS = 80  # a value quoted in a message is cut after this many characters


class StudioError(LLMOSError):
    """A studio request that cannot be done as asked; the message says why and what would be valid."""

    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def quoted(value: object) -> str:
    """`value` as repr() quotes it for a message (a path as its text), cut when long."""
    text = str(value) if isinstance(value, Path) else value
    shown = repr(text)
    if len(shown) <= SHOWN_CHARS + 2:
        return shown
    return f"{shown[:SHOWN_CHARS]}... ({len(text) if isinstance(text, str) else len(shown)} characters)"


def check_path_text(path: str | Path, what: str = "path", field: str | None = None) -> str:
    """The path as text, or StudioError (400) when no file system could open it: a NUL byte, or too long."""
    text = str(path)
    if "\x00" in text:
        raise StudioError(f"{what} {quoted(text)} contains a NUL byte; give a path without one", field=field)
    if len(text) > MAX_PATH_CHARS:
        raise StudioError(f"{what} is {len(text)} characters long; a path has at most {MAX_PATH_CHARS}", field=field)
    return text


def path_exists(path: Path, given: str | Path, what: str = "path", field: str | None = None) -> bool:
    """`path.exists()`, with a name too long for the file system (or any other OSError) a 400 naming `given`."""
    try:
        return path.exists()
    except OSError as exc:
        raise StudioError(f"{what} {quoted(given)} cannot be used: {exc.strerror or exc}", field=field) from None


def confined(path: str | Path, roots: Iterable[Path], what: str = "path", field: str | None = None) -> Path:
    roots = [Path(r).resolve() for r in roots]
    text = check_path_text(path, what, field)
    if not text.strip():
        raise StudioError(f"{what} is empty; give a path inside {_names(roots)}", field=field)
    try:
        given = Path(text).expanduser()
    except RuntimeError:  # ~nosuchuser
        raise StudioError(f"{what} {quoted(text)} names an unknown home folder; give a path inside {_names(roots)}",
                          field=field) from None
    if given.is_absolute():
        candidates = [given.resolve()]
    else:  # relative to a root ("shards"), or to the studio's working folder ("data/shards")
        candidates = [(root / given).resolve() for root in roots] + [given.resolve()]
    inside = [c for c in candidates if is_inside(c, roots)]
    if inside:
        return next((c for c in inside if path_exists(c, text, what, field)), inside[0])
    raise StudioError(f"{what} {quoted(text)} is outside the studio's folders {_names(roots)}", status=403,
                      field=field)


def is_inside(resolved: Path, roots: Iterable[Path]) -> bool:
    """Whether a resolved path is one of the (resolved) roots or under one."""
    return any(resolved == root or root in resolved.parents for root in roots)


def _names(roots: list[Path]) -> str:
    return "[" + ", ".join(repr(str(r)) for r in roots) + "]"
