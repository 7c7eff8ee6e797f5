"""Layer 2b (kernels): build the C++ kernels (csrc/: int_dot.cpp, cached_attention.cpp) once, cache them, load them.

The C++ sources ship in the package. `make setup` runs `python -m llmos.kernels`, which
compiles them into one library with torch's own extension builder (g++ and ninja) into
~/.cache/llmos/extensions/int_dot-torch<version>-<source hash>/ (LLMOS_CACHE_DIR overrides), and
prints one line saying what happened. The directory name changes with torch's version and with
the source, so a stale build is never loaded; a build is made in a temporary directory and renamed
into place, so a half-built library is never seen by another process.

At use time `load()` loads that library (building it first if it is missing, saying so once).
When it cannot (no compiler, a build error, a platform without the ops), it says so once and
returns False: the quantized linears then keep to torch's own kernels and attention to SDPA, so
everything still works.
LLMOS_INT_DOT=0 skips the extension altogether.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

from llmos.measured import cache_dir

SOURCE_DIR = Path(__file__).parent / "csrc"
SOURCES = ("int_dot.cpp", "int_dot_avx2.inc", "int_dot_avx512.inc", "cached_attention.cpp")
COMPILED = ("int_dot.cpp", "cached_attention.cpp")  # the .inc files are included by int_dot.cpp
LIBRARY_NAME = "llmos_int_dot"
log = logging.getLogger("llmos.kernels")

_state: dict[str, object] = {}  # "loaded": bool, "reason": why not, once decided in this process


@functools.cache
def source_hash() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((SOURCE_DIR / name).read_bytes())
    return digest.hexdigest()[:12]


def build_dir() -> Path:
    return cache_dir() / "extensions" / f"int_dot-torch{torch.__version__}-{source_hash()}"


def library_path() -> Path:
    return build_dir() / f"{LIBRARY_NAME}.so"


def enabled() -> bool:
    return os.environ.get("LLMOS_INT_DOT", "1") != "0"


def build() -> Path:
    """Compile the extension into its cache directory (if missing) and return the library's path.

    Raises whatever the compiler or the loader raises; `load()` turns that into a fallback."""
    target = build_dir()
    if (target / f"{LIBRARY_NAME}.so").exists():
        return target / f"{LIBRARY_NAME}.so"
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise RuntimeError(f"int_dot is built for x86-64 Linux only (this is {sys.platform} {platform.machine()})")
    from torch.utils.cpp_extension import load as load_extension

    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f"{target.name}.building-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its compiler-compatibility banner; a failure raises anyway
    try:
        load_extension(name=LIBRARY_NAME, sources=[str(SOURCE_DIR / name) for name in COMPILED], build_directory=str(scratch),
                       extra_cflags=["-O3", "-fopenmp"], extra_ldflags=["-fopenmp"], is_python_module=False,
                       verbose=False)
        try:
            scratch.rename(target)
        except OSError:  # another process finished first: its build is the same source
            shutil.rmtree(scratch, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    finally:
        quiet.setLevel(level)
    return target / f"{LIBRARY_NAME}.so"


def failure(exc: BaseException) -> str:
    """One line saying why a build or load failed: the compiler's first error line when there is one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    commands = ("[", "FAILED:", "ninja:", "Error building extension")
    said = [line for line in lines if not line.startswith(commands) and " -c " not in line]
    errors = [line for line in said if "error" in line.lower() or "not found" in line]
    return f"{type(exc).__name__}: {(errors or said or lines or [''])[0][:300]}"


def _has_ops() -> bool:
    return hasattr(torch.ops, "llmos") and hasattr(torch.ops.llmos, "int4_linear") and hasattr(
        torch.ops.llmos, "cached_attention")


def _built_and_loaded() -> Path:
    """The library's path, built if missing and loaded unless its ops are registered already (building
    loads it too, from the scratch directory: loading a second copy would register the ops twice)."""
    path = build()
    if not _has_ops():
        torch.ops.load_library(str(path))
    return path


def load() -> bool:
    """Whether the int_dot ops are registered in this process (loading or building them once)."""
    if "loaded" in _state:
        return bool(_state["loaded"])
    reason = None
    if not enabled():
        reason = "LLMOS_INT_DOT=0"
    else:
        try:
            if not _has_ops():
                if not library_path().exists():
                    log.warning("llmos: building the integer kernels (int_dot) into %s (once, ~15 s)", build_dir())
                _built_and_loaded()
        except Exception as exc:  # a missing compiler, a build error: the torch kernels still work
            reason = failure(exc)
            log.warning("llmos: the integer kernels (int_dot) are not available (%s); quantized linears use "
                        "torch's kernels", reason)
    _state["loaded"], _state["reason"] = reason is None, reason
    return reason is None


def unavailable_reason() -> str | None:
    """Why `load()` returned False (None when the ops are loaded)."""
    load()
    return _state.get("reason")  # type: ignore[return-value]


def main() -> int:
    """`python -m llmos.kernels`: build (or find) the extension and print one line. Never fails
    the set-up: without a compiler LLMOS runs on torch's kernels."""
    if not enabled():
        print("int_dot kernels: skipped (LLMOS_INT_DOT=0)")
        return 0
    cached = library_path().exists()
    start = time.perf_counter()
    try:
        path = _built_and_loaded()
        isa = ("scalar", "avx2", "avx512bw", "avx512-vnni")[torch.ops.llmos.int_dot_best_isa()]
    except Exception as exc:
        print(f"int_dot kernels: could not build ({failure(exc)}); quantized linears will use torch's kernels")
        return 0
    what = "cached" if cached else f"built in {time.perf_counter() - start:.0f} s"
    print(f"int_dot kernels: {what} at {path} (this CPU: {isa})")
    return 0

