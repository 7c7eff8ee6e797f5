"""Layer 6 (data): turn a corpus into memory-mapped token shards, once.

``prepare`` reads the corpus (see ``corpus``), trains a tokenizer on it unless
one is given, splits documents deterministically into train and validation,
tokenizes them in parallel batches (``tokenizers``' ``encode_batch`` runs on
all cores without the GIL) and writes the shards and ``index.json`` (see
``shards``), with the tokenizer saved in the same directory.

The split is by document, not by token: a document goes to validation when a
hash of (seed, document index) falls below ``val_fraction``, so the split does
not depend on tokenization, the order of processing or the number of workers.
When that leaves validation empty (few documents) the document with the
smallest hash goes there anyway, so a validation loss always exists when the
corpus has two documents or more.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmos.data.corpus import DEFAULT_MAX_DOCUMENT_CHARS, Corpus, CorpusError
from llmos.data.shards import INDEX_FILE, INDEX_FORMAT, INDEX_VERSION, ShardWriter, token_dtype
from llmos.data.tokenizing import (
    encode_texts,
    encoding_copy,
    load_tokenizer,
    save_tokenizer,
    train_new_tokenizer,
    vocab_size_of,
)
from llmos.errors import LLMOSError
from llmos.tokenizer.from_any import as_tokenizer, special_token_id

DEFAULT_SHARD_TOKENS = 1 << 27  # 256 MiB per shard at uint16
_BATCH_DOCUMENTS = 512
_BATCH_CHARS = 4 << 20


@dataclass
class PrepareSummary:
    """What ``prepare`` wrote."""

    out_dir: Path
    tokens: dict[str, int] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    invalid_utf8: int = 0
    vocab_size: int = 0
    dtype: str = ""
    shards: int = 0

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        return (
            f"wrote {self.out_dir}: train {self.tokens.get('train', 0):,} tokens "
            f"({self.documents.get('train', 0):,} docs), val {self.tokens.get('val', 0):,} tokens "
            f"({self.documents.get('val', 0):,} docs), vocab {self.vocab_size:,} ({self.dtype}), "
            f"{self.shards} shard(s), invalid UTF-8 replaced: {self.invalid_utf8}"
        )


def document_hash(seed: int, index: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, document index)."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def validation_mask(num_documents: int, val_fraction: float, seed: int) -> np.ndarray:
    """Which documents go to validation (bool array), deterministic in (seed, index)."""
    hashes = np.array([document_hash(seed, i) for i in range(num_documents)], dtype=np.float64)
    is_val = hashes < val_fraction
    if val_fraction > 0 and num_documents >= 2:
        if not is_val.any():
            is_val[int(np.argmin(hashes))] = True
        if is_val.all():
            is_val[int(np.argmax(hashes))] = False
    return is_val


def _clear_previous(out_dir: Path) -> None:
    for split in ("train", "val"):
        for old in out_dir.glob(f"{split}_*.bin"):
            old.unlink()
    (out_dir / INDEX_FILE).unlink(missing_ok=True)


def _batches(corpus: Corpus) -> Iterable[list[str]]:
    batch: list[str] = []
    chars = 0
    for text in corpus:
        batch.append(text)
        chars += len(text)
        if len(batch) >= _BATCH_DOCUMENTS or chars >= _BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def prepare(
    inputs: Iterable[str | Path] | str | Path,
    out_dir: str | Path,
    tokenizer: Any = None,
    tokenizer_kind: str = "bpe",
    vocab_size: int = 8192,
    val_fraction: float = 0.005,
    seed: int = 0,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    workers: int | None = None,
    text_field: str = "text",
    max_document_chars: int = DEFAULT_MAX_DOCUMENT_CHARS,
    special_tokens: list[str] | None = None,
    progress: bool = True,
) -> PrepareSummary:
    """Tokenize a corpus into ``out_dir``: shards, ``index.json`` and the tokenizer.

    ``tokenizer`` is None (train one of ``tokenizer_kind`` with ``vocab_size``),
    a tokenizer directory, an LLMOS ``Tokenizer`` or any tokenizer ``as_tokenizer`` converts.
    ``workers`` caps the tokenizer's thread pool (``RAYON_NUM_THREADS``); it takes
    effect only if nothing in the process has tokenized in parallel yet.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise LLMOSError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if workers is not None:
        if workers < 1:
            raise LLMOSError(f"workers must be >= 1, got {workers}")
        os.environ.setdefault("RAYON_NUM_THREADS", str(workers))
    corpus = Corpus(inputs, text_field=text_field, max_document_chars=max_document_chars)
    num_documents = corpus.count_documents()
    if num_documents == 0:
        raise CorpusError(
            f"the corpus has no non-empty documents; searched {', '.join(corpus.inputs)} "
            f"({len(corpus.paths)} file(s))"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    if tokenizer is None:
        tokenizer = train_new_tokenizer(corpus, tokenizer_kind, vocab_size, special_tokens)
    elif isinstance(tokenizer, (str, Path)):
        tokenizer = load_tokenizer(tokenizer)
    else:
        tokenizer = as_tokenizer(tokenizer)
    backend = encoding_copy(tokenizer)
    eos_id = special_token_id(tokenizer, "eos")
    if eos_id is None:
        eos_id = special_token_id(tokenizer, "sep")
    if eos_id is None:
        raise LLMOSError(
            "the tokenizer has no end-of-text token (eos) or [SEP] to separate documents; "
            "train it with an eos special token"
        )
    n_vocab = vocab_size_of(tokenizer)
    dtype = token_dtype(n_vocab)
    is_val = validation_mask(num_documents, val_fraction, seed)

    _clear_previous(out_dir)
    writers = {s: ShardWriter(out_dir, s, dtype, shard_tokens) for s in ("train", "val")}
    eos = np.array([eos_id], dtype=np.int64)
    doc_index = 0
    with _ProgressBar(progress, num_documents) as advance:
        for texts in _batches(corpus):
            for ids in encode_texts(backend, texts):
                if ids.size and int(ids.max()) >= n_vocab:
                    raise LLMOSError(f"token id {int(ids.max())} >= vocabulary size {n_vocab}")
                split = "val" if is_val[doc_index] else "train"
                writers[split].add_document(np.concatenate([ids, eos]))
                doc_index += 1
            advance(len(texts))
    splits = {s: w.close() for s, w in writers.items()}

    save_tokenizer(tokenizer, out_dir)
    index = {
        "format": INDEX_FORMAT,
        "version": INDEX_VERSION,
        "dtype": dtype.name,
        "vocab_size": n_vocab,
        "eos_id": eos_id,
        "tokenizer_dir": ".",
        "seed": seed,
        "val_fraction": val_fraction,
        "text_field": text_field,
        "max_document_chars": max_document_chars,
        "sources": [str(p) for p in corpus.paths],
        "invalid_utf8": corpus.invalid_utf8_total,
        "splits": splits,
    }
    (out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return PrepareSummary(
        out_dir=out_dir,
        tokens={s: e["tokens"] for s, e in splits.items()},
        documents={s: e["documents"] for s, e in splits.items()},
        invalid_utf8=corpus.invalid_utf8_total,
        vocab_size=n_vocab,
        dtype=dtype.name,
        shards=sum(len(e["shards"]) for e in splits.values()),
    )


class _ProgressBar:
    """A rich progress bar over documents, or nothing when disabled."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._progress = None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._progress = Progress(
            "tokenizing",
            BarColumn(),
            MofNCompleteColumn(),
            "docs",
            TimeRemainingColumn(),
            transient=True,
        )
        self._progress.__enter__()
        task = self._progress.add_task("tokenizing", total=self.total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
