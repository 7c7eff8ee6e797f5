"""LLMOS: train, adapt, run and serve open language models with code you can read.

The public names load lazily (PEP 562), so `import llmos` and `llmos --help` don't
pay for importing torch until a model or tokenizer is actually used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AutoModelForCausalLM": "llmos.auto",
    "AutoModelForMaskedLM": "llmos.auto",
    "AutoModelForPreTraining": "llmos.auto",
    "AutoModelForSequenceClassification": "llmos.auto",
    "AutoTokenizer": "llmos.auto",
    "ModelConfig": "llmos.config",
    "load_model": "llmos.generation.loading",
    "pipeline": "llmos.apps.pipelines",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llmos' has no attribute {name!r}")
