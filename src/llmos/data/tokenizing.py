"""Layer 6 (data): the few things data preparation needs from a tokenizer.

Data preparation accepts a tokenizer directory, an LLMOS ``Tokenizer`` or any
tokenizer ``llmos.tokenizer.from_any.as_tokenizer`` converts; the entry points
(``prepare``, ``SpecialTokenIds.from_tokenizer``) convert it once, and the
helpers here take only an LLMOS ``Tokenizer``: its fast backend (for parallel
``encode_batch``), its special-token ids, and saving it next to the shards.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer as BackendTokenizer

from llmos.errors import LLMOSError
from llmos.tokenizer import Tokenizer
from llmos.tokenizer.from_any import SPECIAL_SPELLINGS, as_tokenizer, special_token_id


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer directory (or a tokenizer.json file)."""
    path = Path(path)
    if not path.is_file() and not (path / "tokenizer.json").is_file():
        raise LLMOSError(f"tokenizer {path} is not a tokenizer directory (no tokenizer.json)")
    return as_tokenizer(path)


def train_new_tokenizer(
    texts: Iterable[str], kind: str, vocab_size: int, special_tokens: list[str] | None
) -> Tokenizer:
    """Train a tokenizer with llmos.tokenizer.train_tokenizer."""
    from llmos.tokenizer import train_tokenizer

    return train_tokenizer(texts, kind=kind, vocab_size=vocab_size, special_tokens=special_tokens)


def save_tokenizer(tokenizer: Tokenizer, out_dir: Path) -> None:
    """Save the tokenizer in ``out_dir`` so ``from_pretrained(out_dir)`` finds it."""
    tokenizer.save_pretrained(out_dir)


def vocab_size_of(tokenizer: Tokenizer) -> int:
    """Number of ids the tokenizer can produce, added tokens included."""
    return int(tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True))


def all_special_ids(tokenizer: Tokenizer) -> set[int]:
    """Ids of every special added token (never masked, never drawn as random replacements)."""
    ids = {i for name in SPECIAL_SPELLINGS if (i := special_token_id(tokenizer, name)) is not None}
    for token_id, added in tokenizer.backend_tokenizer.get_added_tokens_decoder().items():
        if added.special:
            ids.add(int(token_id))
    return ids


def encoding_copy(tokenizer: Tokenizer) -> BackendTokenizer:
    """A private copy of the backend with padding and truncation off, for whole documents."""
    copy = BackendTokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    copy.no_padding()
    copy.no_truncation()
    return copy


def encode_texts(backend: BackendTokenizer, texts: list[str]) -> list[np.ndarray]:
    """Encode a batch of texts without special tokens, in parallel inside ``tokenizers``."""
    encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
    return [np.asarray(e.ids, dtype=np.int64) for e in encode(texts, add_special_tokens=False)]
