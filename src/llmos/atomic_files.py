"""Layer 0: atomic file and directory writes, the one place LLMOS fsyncs and renames.

A reader, or a process killed at any moment, sees the old file or directory or
the new one, never a part of one: everything is written beside the target,
fsynced, and renamed into place, and the parent directory is fsynced so the
rename itself survives a power cut.

- `atomic_write_text`: one text file (workflow state, measured kernel choices).
- `atomic_write_at`: the same inside a directory already open as a descriptor,
  following no symlink: the temporary file gets a new random name (O_EXCL,
  O_NOFOLLOW) and the rename replaces a link at the name, never its target (the
  agent's workspace writes through it).
- `atomic_directory`: a whole directory (model checkpoints, Hugging Face exports),
  written into a private temporary directory that replaces the target on success
  and vanishes on error.
- `replace_directory`: the two renames under both, for a writer that names its
  own temporary and previous directories so that it can find them again after a
  crash (the trainer's `last.tmp` / `last.old`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from llmos.errors import LLMOSError


def fsync_file(path: str | Path) -> None:
    """Flush one file's contents (or a directory's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flush a directory's entries (names created or renamed in it); a no-op where the platform
    cannot open or fsync a directory."""
    with contextlib.suppress(OSError):
        fsync_file(path)


def fsync_tree(directory: str | Path) -> None:
    """Flush every file below `directory`, then the directory itself."""
    for path in Path(directory).rglob("*"):
        if path.is_file():
            fsync_file(path)
    fsync_dir(directory)


def replace_directory(new: Path, target: Path, previous: Path) -> None:
    """Rename the (already fsynced) directory `new` to `target`. An existing `target` is first moved
    to `previous`, so a crash between the two renames leaves it there, whole; it is removed after."""
    if target.exists():
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(target, previous)
    os.replace(new, target)
    fsync_dir(target.parent)
    shutil.rmtree(previous, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `target`; on success it replaces `target`, on error it vanishes.

    Raises LLMOSError (which the CLI reports in one line) when `target` is a file."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise LLMOSError(f"{target} exists and is not a directory; choose a directory path to write into")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        _make_readable(tmp)
        fsync_tree(tmp)
        previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rmdir(previous)
        replace_directory(tmp, target, previous)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(target: str | Path, text: str) -> Path:
    """Write one text file the way `atomic_directory` writes a directory (temporary file beside it,
    fsync, rename). Returns the target's path."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        atomic_write_at(directory, target.name, text.encode("utf-8"))
    finally:
        os.close(directory)
    return target


def atomic_write_at(directory: int, name: str, data: bytes) -> None:
    """Write `data` as the file `name` of the directory open as the descriptor `directory`: a new
    temporary file there (a random name, O_EXCL|O_NOFOLLOW: nothing planted can be written through),
    fsync, rename over `name` (a symlink at `name` is replaced, not followed), fsync the directory."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    tmp = f".{name[:32]}.tmp-{secrets.token_hex(8)}"  # short: a name near the length limit still has one
    fd = os.open(tmp, flags, 0o666, dir_fd=directory)  # 0o666 less the umask, as a plain open would
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=directory)
        raise
    with contextlib.suppress(OSError):  # a platform that cannot fsync a directory
        os.fsync(directory)


def _make_readable(directory: Path) -> None:
    """mkdtemp makes 0700 directories; give the written tree the usual umask permissions."""
    umask = _umask()
    os.chmod(directory, 0o777 & ~umask)
    for item in directory.rglob("*"):
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~umask)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
