"""Layer 8: built-in tools, safe by default: files inside one workspace, a calculator, the time.

- `Workspace(root)`: read, list and write files, only inside `root`. A path that
  leaves it (`..`, an absolute path elsewhere, a symlink pointing out) is refused
  before anything is opened. Then every folder on the way is opened one level at
  a time from the root without following a symlink, so a folder swapped for a
  link after the check is refused, not followed; a write goes to a new randomly
  named temporary file in that folder and is renamed over the name (a link
  planted there is replaced, never written through). Folders, the workspace
  itself, names the system cannot hold and anything but a regular file are
  refused; links that point out are not listed; reads and writes are
  size-limited.
- `calculate(expression)`: arithmetic on numbers through Python's `ast`, never
  `eval`; only + - * / // % ** and unary signs. Every value along the way is
  bounded (integers to MAX_INT_BITS bits, checked before a * or ** is computed;
  floats finite; no complex results), as are the nesting depth and the time.
- `current_time(timezone)`: ISO 8601 time in an IANA zone.

Shell and HTTP tools, which can reach outside the workspace, are not here:
`llmos.apps.system_tools` has them, off until built with an explicit allow-list.
"""

from __future__ import annotations

import ast
import contextlib
import math
import operator
import os
import stat
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from llmos.apps.tool_schema import ToolError
from llmos.atomic_files import atomic_write_at

MAX_FILE_BYTES = 1 << 20
MAX_LISTED = 500
MAX_EXPRESSION_CHARS = 1000
# calculate's expression: numbers, operators, parentheses and at least one operation, so a
# constrained call writes neither units ("90 km / 3.5 hours") nor a lone number ("52")
ARITHMETIC = r"^[-(0-9. ]*[0-9.)] *[-+*/%] *[0-9.+\-*/%() ]*$"
MAX_INT_BITS = 4096  # about 1,233 decimal digits
MAX_DEPTH = 100  # nested operations in one expression
MAX_SECONDS = 1.0
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO must not hang a read


class Workspace:
    """File tools confined to one folder (see the module docstring for how)."""

    def __init__(self, root: str | Path, max_bytes: int = MAX_FILE_BYTES) -> None:
        try:
            self.root = Path(root).resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            raise ToolError(f"workspace {str(root)!r} cannot be resolved: {exc}") from None
        if not self.root.is_dir():
            raise ToolError(f"workspace {str(root)!r} is not a folder")
        self.max_bytes = max_bytes
        try:
            self.max_name_bytes = os.pathconf(self.root, "PC_NAME_MAX")
        except (OSError, ValueError):
            self.max_name_bytes = 255

    def _parts(self, path: str) -> tuple[str, ...]:
        """The names from the root down to `path`, '..' and every symlink on the way resolved;
        ToolError if that leaves the root or a name is one the system cannot hold."""
        if "\0" in path:
            raise ToolError(f"path {path!r} contains a NUL character")
        try:
            target = (self.root / path).resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            raise ToolError(f"path {path!r} cannot be resolved: {exc}") from None
        if target != self.root and self.root not in target.parents:
            raise ToolError(f"path {path!r} is outside the workspace {str(self.root)!r}")
        parts = target.relative_to(self.root).parts
        for part in parts:
            if len(os.fsencode(part)) > self.max_name_bytes:
                raise ToolError(f"path {path!r}: the name {part[:40]!r}... is longer than "
                                f"{self.max_name_bytes} bytes")
        return parts

    @contextlib.contextmanager
    def _folder(self, parts: tuple[str, ...], create: bool = False) -> Iterator[int]:
        """A descriptor of the folder root/parts, opened one level at a time following no symlink
        (missing folders are made when `create`)."""
        fd = os.open(self.root, _FOLDER)
        try:
            for part in parts:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, dir_fd=fd)
                try:
                    child = os.open(part, _FOLDER, dir_fd=fd)
                except OSError:
                    if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                        raise ToolError(f"the folder {part!r} became a symbolic link after it was checked; "
                                        "it is not followed") from None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        try:
            yield fd
        finally:
            os.close(fd)

    def read_file(self, path: str) -> str:
        """Read a text file of the workspace.

        Args:
            path: the file's path, relative to the workspace
        """
        parts = self._parts(path)
        try:
            if not parts:
                raise IsADirectoryError
            with self._folder(parts[:-1]) as folder:
                fd = os.open(parts[-1], _FILE, dir_fd=folder)
            with os.fdopen(fd, "rb") as f:
                info = os.fstat(f.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise IsADirectoryError
                if info.st_size > self.max_bytes:
                    raise ToolError(f"{path!r} is larger than {self.max_bytes} bytes")
                data = f.read(self.max_bytes + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ToolError(f"{path!r} is not a file in the workspace") from None
        except OSError as exc:
            raise ToolError(f"cannot read {path!r}: {exc.strerror or exc}") from None
        if len(data) > self.max_bytes:  # it grew since fstat
            raise ToolError(f"{path!r} is larger than {self.max_bytes} bytes")
        return data.decode("utf-8", errors="replace")

    def list_files(self, path: str = ".") -> list[str]:
        """List the files and folders in a folder of the workspace (folders end with '/').

        Args:
            path: the folder, relative to the workspace
        """
        parts = self._parts(path)
        listed = []
        try:
            with self._folder(parts) as folder:
                for name in sorted(os.listdir(folder)):
                    kind = self._kind(parts, name, folder)
                    if kind is not None:
                        listed.append("/".join((*parts, name)) + ("/" if kind == "folder" else ""))
                    if len(listed) == MAX_LISTED:
                        break
        except (FileNotFoundError, NotADirectoryError):
            raise ToolError(f"{path!r} is not a folder in the workspace") from None
        except OSError as exc:
            raise ToolError(f"cannot list {path!r}: {exc.strerror or exc}") from None
        return listed

    def _kind(self, parts: tuple[str, ...], name: str, folder: int) -> str | None:
        """'folder' or 'file' for an entry, following a symlink only where it stays inside; None for
        a link that points out (not listed: it could not be read) or an entry gone meanwhile."""
        try:
            mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                target = self.root.joinpath(*parts, name).resolve()
                if target != self.root and self.root not in target.parents:
                    return None
                mode = target.stat().st_mode
        except (OSError, RuntimeError):
            return None
        return "folder" if stat.S_ISDIR(mode) else "file"

    def write_file(self, path: str, content: str) -> str:
        """Write a text file in the workspace (its folder is created), replacing any old one.

        Args:
            path: the file's path, relative to the workspace
            content: the text to write
        """
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ToolError(f"content is not valid text: {exc.reason}") from None
        if len(data) > self.max_bytes:
            raise ToolError(f"content is larger than {self.max_bytes} bytes")
        if path.endswith(("/", os.sep)):
            raise ToolError(f"{path!r} names a folder (it ends with '/'); give a file's path")
        parts = self._parts(path)
        if not parts:
            raise ToolError(f"{path!r} is the workspace itself; give a file's path in it")
        if self.root.joinpath(*parts).is_dir():
            raise ToolError(f"{path!r} is a folder; give a file's path")
        try:
            with self._folder(parts[:-1], create=True) as folder:
                atomic_write_at(folder, parts[-1], data)
        except (FileExistsError, NotADirectoryError):
            raise ToolError(f"cannot write {path!r}: a file stands where a folder of its path should be") from None
        except IsADirectoryError:
            raise ToolError(f"{path!r} is a folder; give a file's path") from None
        except OSError as exc:  # a symlink swapped in on the way (ELOOP), a full disk, ...
            raise ToolError(f"cannot write {path!r}: {exc.strerror or exc}") from None
        return f"wrote {len(content)} characters to {path}"

    def tools(self) -> list:
        return [self.read_file, self.list_files, self.write_file]


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _result_bits(op: ast.operator, left: int | float, right: int | float) -> float:
    """About how many bits the integer `left op right` would need, known before it is computed (only
    * and ** can outgrow their operands; floats carry their own bound: they overflow or go infinite)."""
    if not isinstance(left, int) or not isinstance(right, int) or left in (-1, 0, 1):
        return 0.0
    if isinstance(op, ast.Mult):
        return left.bit_length() + right.bit_length() if right else 0.0
    if isinstance(op, ast.Pow) and right > 0:
        return math.inf if right.bit_length() > 64 else math.log2(abs(left)) * right
    return 0.0


def _depth(tree: ast.AST) -> int:
    """How deeply `tree` nests, found without recursion (so a deep tree is measured, not a RecursionError)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _checked(value: Any) -> int | float:
    """`value` if it is within the calculator's bounds, else ToolError saying which one it passes."""
    if isinstance(value, complex):
        raise ToolError("the result is a complex number (a negative number to a fractional power); "
                        "only real results are given")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("a value is too large for a float (it overflows)")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError(f"a value is too large: more than {MAX_INT_BITS} bits")
    return value


def _evaluate(node: ast.AST, deadline: float) -> int | float:
    if time.monotonic() > deadline:
        raise ToolError(f"the expression took longer than {MAX_SECONDS} s")
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, deadline), _evaluate(node.right, deadline)
        bits = _result_bits(node.op, left, right)
        if bits > MAX_INT_BITS:
            raise ToolError(f"{ast.unparse(node)[:60]!r} is too large: more than {MAX_INT_BITS} bits")
        try:
            return _checked(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError(f"{ast.unparse(node)[:60]!r} is too large for a float (it overflows)") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_evaluate(node.operand, deadline)))
    raise ToolError(f"{ast.unparse(node)[:60]!r} is not arithmetic; use numbers, + - * / // % ** and parentheses")


def calculate(expression: Annotated[str, {"pattern": ARITHMETIC, "maxLength": MAX_EXPRESSION_CHARS}]) -> float | int:
    """Evaluate an arithmetic expression, e.g. (3 + 4) * 2 ** 3.

    Args:
        expression: numbers, + - * / // % ** and parentheses
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError):  # ValueError: a NUL character (Python < 3.12)
        raise ToolError(f"{expression!r} is not a valid expression") from None
    except (RecursionError, MemoryError):
        raise ToolError(f"the expression is nested too deeply (more than {MAX_DEPTH} levels)") from None
    if _depth(tree.body) > MAX_DEPTH:
        raise ToolError(f"the expression is nested too deeply (more than {MAX_DEPTH} levels)")
    return _evaluate(tree.body, time.monotonic() + MAX_SECONDS)


def current_time(timezone: str = "UTC") -> str:
    """The current date and time in ISO 8601.

    Args:
        timezone: an IANA time zone name, e.g. Europe/Paris
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {timezone!r}; use an IANA name such as 'UTC' or 'Europe/Paris'") from None
    return datetime.now(zone).isoformat(timespec="seconds")
