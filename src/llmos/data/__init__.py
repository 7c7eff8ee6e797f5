"""Layer 6 (data): corpora to memory-mapped token shards, and the batches training draws from them.

The batches (which need torch) load lazily (PEP 562): `llmos data --help` reads
the defaults of `data.corpus` and `data.prepare` without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from llmos.data.corpus import Corpus, CorpusError, find_corpus_files
from llmos.data.prepare import PrepareSummary, prepare
from llmos.data.shards import ShardError, TokenShards

_LAZY = {
    "CausalBatches": "llmos.data.batches",
    "eval_batches": "llmos.data.batches",
    "MLMNSPBatches": "llmos.data.mlm",
    "SpecialTokenIds": "llmos.data.mlm",
}

__all__ = [
    "CausalBatches",
    "Corpus",
    "MLMNSPBatches",
    "CorpusError",
    "PrepareSummary",
    "ShardError",
    "SpecialTokenIds",
    "TokenShards",
    "eval_batches",
    "find_corpus_files",
    "prepare",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmos.data' has no attribute {name!r}")
