"""Layer 6 (data): a real text corpus with no download: the Python standard library's documentation.

Every Python installation carries English prose about itself: the language
reference topics behind ``help("assert")`` and the docstrings of its modules,
classes and functions. ``build_stdlib_corpus`` writes them out (one document
per topic, and per module: the module docstring, then each public class and
function with its signature and docstring), which is enough
for ``llmos quickstart`` to pretrain a small model on text that is not random.

Importing arbitrary stdlib modules has side effects, so modules that open
windows or browsers, print on import, or take long are skipped, output is
swallowed, warnings silenced, and the whole build stops at a time budget.
Output is deterministic on one Python build: modules and members are sorted,
and memory addresses in reprs are removed.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import itertools
import pkgutil
import re
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from llmos.errors import LLMOSError

DEFAULT_MAX_BYTES = 4 << 20

# Side effects on import (windows, browsers, printing, terminal control), platform-only,
# or huge and unhelpful.
SKIPPED_MODULES = frozenset(
    {
        "antigravity",
        "this",
        "idlelib",
        "tkinter",
        "turtle",
        "turtledemo",
        "test",
        "lib2to3",
        "readline",
        "rlcompleter",
        "ensurepip",
        "pydoc_data",
        "msvcrt",
        "winreg",
        "winsound",
        "nturl2path",
        "msilib",
        "_msi",
        "__hello__",
        "__phello__",
        "__future__",
        "xxsubtype",
        "xxlimited",
        "xxlimited_35",
        "sre_compile",
        "sre_constants",
        "sre_parse",
        "distutils",
    }
)
# Packages whose submodules are generated boilerplate (codec tables), not prose.
_NO_SUBMODULES = frozenset({"encodings"})

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def stdlib_module_names() -> list[str]:
    """Public top-level standard-library module names, sorted."""
    names = getattr(sys, "stdlib_module_names", None)
    if names is None:  # Python 3.9 and older
        names = set(sys.builtin_module_names)
    return sorted(n for n in names if not n.startswith("_") and n not in SKIPPED_MODULES)


def _submodule_names(package: object) -> list[str]:
    """Public submodules of an imported package (found without importing them), sorted."""
    path = getattr(package, "__path__", None)
    if path is None or package.__name__ in _NO_SUBMODULES:
        return []
    return sorted(
        f"{package.__name__}.{info.name}"
        for info in pkgutil.iter_modules(path)
        if not info.name.startswith("_") and info.name not in ("test", "tests")
    )


def _signature(obj: object) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _describe(name: str, obj: object, indent: str = "") -> str | None:
    doc = inspect.getdoc(obj)
    if not doc:
        return None
    if inspect.isclass(obj):
        head = f"{indent}class {name}{_signature(obj)}"
    else:
        head = f"{indent}{name}{_signature(obj)}"
    body = "\n".join(f"{indent}    {line}" if line else "" for line in doc.splitlines())
    return f"{head}\n{body}"


def module_document(module: object) -> str:
    """The text of one module: its docstring, then its public classes and functions."""
    name = module.__name__
    parts = [f"Module {name}"]
    doc = inspect.getdoc(module)
    if doc:
        parts.append(doc)
    public = getattr(module, "__all__", None)
    members = sorted(vars(module).items())
    for member_name, member in members:
        if member_name.startswith("_") or (public is not None and member_name not in public):
            continue
        if getattr(member, "__module__", None) != name:
            continue
        if inspect.isclass(member):
            text = _describe(member_name, member)
            methods = []
            for method_name, method in sorted(vars(member).items()):
                if method_name.startswith("_") and method_name != "__init__":
                    continue
                if inspect.isfunction(method) or inspect.ismethoddescriptor(method):
                    described = _describe(f"{member_name}.{method_name}", method, "    ")
                    if described:
                        methods.append(described)
            if text or methods:
                parts.append("\n\n".join(p for p in [text or f"class {member_name}", *methods]))
        elif inspect.isfunction(member) or inspect.isbuiltin(member):
            text = _describe(member_name, member)
            if text:
                parts.append(text)
    return _ADDRESS.sub("", "\n\n".join(parts)) + "\n"


def _import_quietly(name: str) -> object | None:
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return importlib.import_module(name)
    except BaseException:  # noqa: BLE001 - any failure (even SystemExit) just skips the module
        return None


def reference_topics() -> Iterator[tuple[str, str]]:
    """(name, text) of the Python language reference topics that ship with pydoc."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return
    for name in sorted(topics):
        yield f"reference.{name}", topics[name].strip() + "\n"


def module_documents(deadline: float) -> Iterator[tuple[str, str]]:
    """(module name, text) for every importable public stdlib module, depth first, sorted."""
    pending = stdlib_module_names()
    while pending and time.monotonic() < deadline:
        name = pending.pop(0)
        module = _import_quietly(name)
        if module is None:
            continue
        pending[:0] = _submodule_names(module)
        try:
            yield name, module_document(module)
        except Exception:  # noqa: BLE001 - a module whose members misbehave is skipped
            continue


def build_stdlib_corpus(
    out: str | Path, max_bytes: int = DEFAULT_MAX_BYTES, time_budget_s: float = 20.0
) -> list[Path]:
    """Write the standard library's documentation as a text corpus; return the files written.

    First the language reference topics that ship with pydoc, then every
    module's documentation. ``out`` ending in ``.txt`` gets everything in that
    one file (separated by blank lines); otherwise ``out`` is a folder with one
    ``<name>.txt`` per topic or module (one document each). Stops after
    ``max_bytes`` of UTF-8 text or ``time_budget_s`` seconds, whichever first.
    """
    if max_bytes < 1:
        raise LLMOSError(f"max_bytes must be >= 1, got {max_bytes}")
    out = Path(out)
    single_file = out.suffix == ".txt"
    (out.parent if single_file else out).mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + time_budget_s
    written: list[Path] = []
    documents: list[str] = []
    total = 0
    for name, text in itertools.chain(reference_topics(), module_documents(deadline)):
        data = text.encode("utf-8", errors="replace")
        separator = 2 if single_file and documents else 0  # the blank line between documents
        room = max_bytes - total - separator
        if room < 64:
            break
        if len(data) > room:
            data = data[:room].decode("utf-8", errors="ignore").encode("utf-8")
        if len(data.strip()) < 64:
            continue
        total += separator + len(data)
        if single_file:
            documents.append(data.decode("utf-8"))
        else:
            path = out / f"{name}.txt"
            path.write_bytes(data)
            written.append(path)
    if single_file:
        out.write_text("\n\n".join(documents), encoding="utf-8")
        written = [out]
    if total == 0:
        raise LLMOSError("no standard-library documentation could be read in this Python")
    return written
