"""Layer 6 (data): masked-LM + next-sentence-prediction batches (BERT pretraining) from shards.

Each document of the split (its tokens between EOS separators) is cut into
chunks of at most ``context - 3`` tokens. An epoch visits the chunks in a
seeded permutation; each chunk becomes one example:

- the chunk is split at a random point into ``A`` and the true next part ``B``;
- half the time ``B`` is replaced by a span of the same length (or shorter)
  from a chunk of another document: ``next_sentence_label`` 1 (NotNext),
  otherwise 0 (IsNext), as in BERT and Hugging Face;
- the pair becomes ``[CLS] A [SEP] B [SEP]`` with ``token_type_ids`` 0 then 1,
  padded to ``context`` (``attention_mask`` 0 on padding);
- 15% of the non-special tokens (rounded, at least one) are chosen; of them 80%
  become ``[MASK]``, 10% a random non-special token, 10% stay; ``labels`` hold
  the original id there and -100 elsewhere.

Every random choice of an example comes from a generator seeded by
(seed, epoch, position), so batches are deterministic and ``state_dict()`` /
``load_state_dict()`` resume exactly, like ``CausalBatches``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llmos.data.batches import DataPosition
from llmos.data.shards import TokenShards
from llmos.data.tokenizing import (
    all_special_ids,
    load_tokenizer,
    vocab_size_of,
)
from llmos.errors import LLMOSError
from llmos.model.heads import IGNORE_INDEX
from llmos.tokenizer.from_any import as_tokenizer, special_token_id

IS_NEXT, NOT_NEXT = 0, 1


@dataclass(frozen=True)
class SpecialTokenIds:
    """The token ids MLM/NSP examples are built with."""

    cls_id: int
    sep_id: int
    mask_id: int
    pad_id: int
    vocab_size: int
    special_ids: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> SpecialTokenIds:
        """Read the ids from an LLMOS ``Tokenizer`` (or any tokenizer ``as_tokenizer`` converts)."""
        tokenizer = as_tokenizer(tokenizer)
        ids = {name: special_token_id(tokenizer, name) for name in ("cls", "sep", "mask", "pad")}
        missing = [f"[{name.upper()}]" for name, value in ids.items() if value is None]
        if missing:
            raise LLMOSError(
                f"the tokenizer has no {', '.join(missing)} token; masked-LM + NSP data needs "
                "[CLS], [SEP], [MASK] and [PAD] (train a wordpiece tokenizer)"
            )
        return cls(
            cls_id=ids["cls"],
            sep_id=ids["sep"],
            mask_id=ids["mask"],
            pad_id=ids["pad"],
            vocab_size=vocab_size_of(tokenizer),
            special_ids=frozenset(all_special_ids(tokenizer)),
        )

    def never_masked(self) -> frozenset[int]:
        return self.special_ids | {self.cls_id, self.sep_id, self.mask_id, self.pad_id}


def document_chunks(shards: TokenShards, max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, length, document) of every chunk of <= max_len tokens with at least 2 tokens."""
    starts = np.asarray(shards.document_starts(), dtype=np.int64)
    ends = np.append(starts[1:], shards.num_tokens) - 1  # drop each document's EOS
    lengths = np.maximum(ends - starts, 0)
    pieces = -(-lengths // max_len)  # ceil
    doc = np.repeat(np.arange(len(starts)), pieces)
    first_piece = np.repeat(np.cumsum(pieces) - pieces, pieces)
    offset = (np.arange(len(doc)) - first_piece) * max_len
    chunk_start = starts[doc] + offset
    chunk_len = np.minimum(max_len, lengths[doc] - offset)
    keep = chunk_len >= 2
    return chunk_start[keep], chunk_len[keep], doc[keep]


class MLMNSPBatches(DataPosition):
    """Infinite, deterministic dicts of (batch_size, context) LongTensors for BERT pretraining."""

    def __init__(
        self,
        shards: TokenShards,
        batch_size: int,
        context: int,
        seed: int = 0,
        special: SpecialTokenIds | None = None,
        mlm_probability: float = 0.15,
        not_next_prob: float = 0.5,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        """``special`` defaults to the ids of the tokenizer saved with the shards."""
        if special is None:
            special = SpecialTokenIds.from_tokenizer(load_tokenizer(shards.tokenizer_dir))
        if batch_size < 1:
            raise LLMOSError(f"batch_size must be >= 1, got {batch_size}")
        if context < 5:
            raise LLMOSError(f"context must be >= 5 for [CLS] A [SEP] B [SEP], got {context}")
        if not 0 < mlm_probability < 1:
            raise LLMOSError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
        if not 0 <= not_next_prob <= 1:
            raise LLMOSError(f"not_next_prob must be in [0, 1], got {not_next_prob}")
        if not 0 <= rank < world_size:
            raise LLMOSError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if special.vocab_size < shards.vocab_size:
            raise LLMOSError(
                f"the tokenizer's vocabulary ({special.vocab_size}) is smaller than the "
                f"shards' ({shards.vocab_size}); use the tokenizer saved with the shards"
            )
        self.shards = shards
        self.special = special
        self.batch_size = batch_size
        self.context = context
        self.seed = seed
        self.mlm_probability = mlm_probability
        self.not_next_prob = not_next_prob
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.index = 0
        self._chunk_start, self._chunk_len, self._chunk_doc = document_chunks(shards, context - 3)
        if len(self._chunk_start) == 0:
            raise LLMOSError(
                f"the {shards.split} split of {shards.data_dir} has no document of 2 tokens or "
                "more to build sentence pairs from"
            )
        self._many_documents = len(np.unique(self._chunk_doc)) > 1
        never = np.fromiter(special.never_masked(), dtype=np.int64)
        self._never_masked = never
        self._random_pool = np.setdiff1d(np.arange(special.vocab_size), never)
        self._order_epoch: int | None = None
        self._order = np.zeros(0, dtype=np.int64)

    @property
    def examples_per_epoch(self) -> int:
        return len(self._chunk_start)

    def positions_in_epoch(self, epoch: int) -> int:
        return self.examples_per_epoch

    def _order_of(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(
                self.examples_per_epoch
            )
            self._order_epoch = epoch
        return self._order

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        positions = []
        for _ in range(self.batch_size * self.world_size):
            positions.append((self.epoch, self.index))
            self.index += 1
            if self.index == self.examples_per_epoch:
                self.epoch, self.index = self.epoch + 1, 0
        mine = positions[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        examples = [self.example(epoch, index) for epoch, index in mine]
        return {key: torch.from_numpy(np.stack([e[key] for e in examples])) for key in examples[0]}

    def example(self, epoch: int, index: int) -> dict[str, np.ndarray]:
        """The example at position ``index`` of epoch ``epoch`` (pure function of seed and both)."""
        chunk = int(self._order_of(epoch)[index])
        rng = np.random.default_rng([self.seed, epoch, index, 1])
        length = int(self._chunk_len[chunk])
        tokens = self.shards.window(int(self._chunk_start[chunk]), length)
        a_len = int(rng.integers(1, length))
        first, second = tokens[:a_len], tokens[a_len:]
        label = IS_NEXT
        if self._many_documents and rng.random() < self.not_next_prob:
            other = self._chunk_from_other_document(rng, int(self._chunk_doc[chunk]))
            other_len = int(self._chunk_len[other])
            b_len = min(len(second), other_len)
            offset = int(rng.integers(0, other_len - b_len + 1))
            second = self.shards.window(int(self._chunk_start[other]) + offset, b_len)
            label = NOT_NEXT
        return self._assemble(first, second, label, rng)

    def _chunk_from_other_document(self, rng: np.random.Generator, document: int) -> int:
        for _ in range(16):
            candidate = int(rng.integers(0, self.examples_per_epoch))
            if self._chunk_doc[candidate] != document:
                return candidate
        others = np.flatnonzero(self._chunk_doc != document)
        return int(others[rng.integers(0, len(others))])

    def _assemble(
        self, first: np.ndarray, second: np.ndarray, label: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        s = self.special
        n = len(first) + len(second) + 3
        input_ids = np.full(self.context, s.pad_id, dtype=np.int64)
        input_ids[:n] = np.concatenate([[s.cls_id], first, [s.sep_id], second, [s.sep_id]])
        token_type_ids = np.zeros(self.context, dtype=np.int64)
        token_type_ids[len(first) + 2 : n] = 1
        attention_mask = np.zeros(self.context, dtype=np.int64)
        attention_mask[:n] = 1
        labels = np.full(self.context, IGNORE_INDEX, dtype=np.int64)

        candidates = np.flatnonzero(~np.isin(input_ids[:n], self._never_masked))
        if len(candidates):
            n_chosen = max(1, int(round(self.mlm_probability * len(candidates))))
            chosen = np.sort(rng.choice(candidates, size=n_chosen, replace=False))
            labels[chosen] = input_ids[chosen]
            action = rng.random(n_chosen)
            to_mask = chosen[action < 0.8]
            to_random = chosen[(action >= 0.8) & (action < 0.9)]
            input_ids[to_mask] = s.mask_id
            input_ids[to_random] = rng.choice(self._random_pool, size=len(to_random))
        return {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "next_sentence_label": np.int64(label),
        }
