"""Layer 8: built-in tools, safe by default: files inside one workspace, a calculator, the time.

- `Workspace(root)`: read, list and write files, only inside `root`. A path that
  leaves it (`..`, an absolute path elsewhere, a symlink pointing out) is refused
  before anything is opened; reads and writes are size-limited.
- `calculate(expression)`: arithmetic on numbers through Python's `ast`, never
  `eval`; only + - * / // % ** and unary signs, with bounded exponents.
- `current_time(timezone)`: ISO 8601 time in an IANA zone.

Shell and HTTP tools, which can reach outside the workspace, are not here:
`llmos.apps.system_tools` has them, off until built with an explicit allow-list.
"""

from __future__ import annotations

import ast
import operator
from datetime import datetime
from pathlib import Path
from typing import Any

from llmos.apps.tool_schema import ToolError

MAX_FILE_BYTES = 1 << 20
MAX_EXPONENT = 1000
MAX_LISTED = 500


class Workspace:
    """File tools confined to one folder."""

    def __init__(self, root: str | Path, max_bytes: int = MAX_FILE_BYTES) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ToolError(f"workspace {str(root)!r} is not a folder")
        self.max_bytes = max_bytes

    def _inside(self, path: str) -> Path:
        target = (self.root / path).resolve()  # resolves '..' and every symlink on the way
        if target != self.root and self.root not in target.parents:
            raise ToolError(f"path {path!r} is outside the workspace {str(self.root)!r}")
        return target

    def read_file(self, path: str) -> str:
        """Read a text file of the workspace.

        Args:
            path: the file's path, relative to the workspace
        """
        target = self._inside(path)
        if not target.is_file():
            raise ToolError(f"{path!r} is not a file in the workspace")
        if target.stat().st_size > self.max_bytes:
            raise ToolError(f"{path!r} is larger than {self.max_bytes} bytes")
        return target.read_text(encoding="utf-8", errors="replace")

    def list_files(self, path: str = ".") -> list[str]:
        """List the files and folders in a folder of the workspace (folders end with '/').

        Args:
            path: the folder, relative to the workspace
        """
        target = self._inside(path)
        if not target.is_dir():
            raise ToolError(f"{path!r} is not a folder in the workspace")
        entries = sorted(target.iterdir())[:MAX_LISTED]
        return [str(e.relative_to(self.root)) + ("/" if e.is_dir() else "") for e in entries]

    def write_file(self, path: str, content: str) -> str:
        """Write a text file in the workspace (its folder is created), replacing any old one.

        Args:
            path: the file's path, relative to the workspace
            content: the text to write
        """
        if len(content.encode()) > self.max_bytes:
            raise ToolError(f"content is larger than {self.max_bytes} bytes")
        target = self._inside(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target = self._inside(path)  # again: a folder created above may not be a way out
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(target)
        return f"wrote {len(content)} characters to {path}"

    def tools(self) -> list:
        return [self.read_file, self.list_files, self.write_file]


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _evaluate(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponent {right} is too large (at most {MAX_EXPONENT})")
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    raise ToolError(f"{ast.unparse(node)!r} is not arithmetic; use numbers, + - * / // % ** and parentheses")


def calculate(expression: str) -> float | int:
    """Evaluate an arithmetic expression, e.g. (3 + 4) * 2 ** 3.

    Args:
        expression: numbers, + - * / // % ** and parentheses
    """
    if len(expression) > 1000:
        raise ToolError("expression is longer than 1000 characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise ToolError(f"{expression!r} is not a valid expression") from None
    return _evaluate(tree.body)


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
