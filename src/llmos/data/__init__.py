"""Layer 6 (data): corpora to memory-mapped token shards, and the batches training draws from them."""

from llmos.data.batches import CausalBatches, eval_batches
from llmos.data.corpus import Corpus, CorpusError, find_corpus_files
from llmos.data.mlm import MLMNSPBatches, SpecialTokenIds
from llmos.data.prepare import PrepareSummary, prepare
from llmos.data.shards import ShardError, TokenShards

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
