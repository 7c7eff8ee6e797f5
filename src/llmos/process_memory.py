"""Layer 0: `give_back_freed_memory()`: return the C heap's free pages to the operating system.

Loading a model and compiling a decode step allocate and free hundreds of MB of
transient buffers; glibc keeps freed heap pages mapped, so they would stay in
the process's RSS for its whole life. `malloc_trim(0)` hands them back (measured
on `llmos serve smollm2`: ~50 MB less after start). A no-op without glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


def give_back_freed_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
