"""Layer 6 (data): the few things data preparation needs from a tokenizer.

Data preparation accepts an LLMOS ``Tokenizer``, a tokenizer directory or a
bare ``tokenizers.Tokenizer``. This module hides the difference: it finds the
fast backend (for parallel ``encode_batch``), the special-token ids, and saves
the tokenizer next to the shards, so ``prepare`` and the batch builders never
care which of the three they were given.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer as BackendTokenizer

from llmos.errors import LLMOSError

# Spellings of special tokens tried on a bare tokenizers.Tokenizer, most common first.
_SPECIAL_SPELLINGS = {
    "eos": ("<|endoftext|>", "</s>", "<eos>", "[EOS]", "<|end_of_text|>"),
    "bos": ("<s>", "<bos>", "[BOS]", "<|begin_of_text|>"),
    "cls": ("[CLS]", "<cls>"),
    "sep": ("[SEP]", "<sep>"),
    "mask": ("[MASK]", "<mask>"),
    "pad": ("[PAD]", "<pad>", "<|pad|>"),
    "unk": ("[UNK]", "<unk>"),
}


def backend_of(tokenizer: Any) -> BackendTokenizer:
    """The ``tokenizers.Tokenizer`` doing the work inside ``tokenizer``."""
    if isinstance(tokenizer, BackendTokenizer):
        return tokenizer
    for attr in ("backend_tokenizer", "backend", "_tokenizer", "tokenizer", "_backend"):
        inner = getattr(tokenizer, attr, None)
        if isinstance(inner, BackendTokenizer):
            return inner
    raise LLMOSError(
        f"cannot use {type(tokenizer).__name__} as a tokenizer; give an llmos Tokenizer, "
        "a tokenizer directory or a tokenizers.Tokenizer"
    )


def load_tokenizer(path: str | Path) -> Any:
    """Load a tokenizer directory (or a tokenizer.json file)."""
    path = Path(path)
    if path.is_file():
        return BackendTokenizer.from_file(str(path))
    if not (path / "tokenizer.json").is_file():
        raise LLMOSError(f"tokenizer {path} is not a tokenizer directory (no tokenizer.json)")
    try:
        from llmos.tokenizer import Tokenizer
    except ImportError:
        return BackendTokenizer.from_file(str(path / "tokenizer.json"))
    return Tokenizer.from_pretrained(path)


def train_new_tokenizer(
    texts: Iterable[str], kind: str, vocab_size: int, special_tokens: list[str] | None
) -> Any:
    """Train a tokenizer with llmos.tokenizer.train_tokenizer."""
    from llmos.tokenizer import train_tokenizer

    return train_tokenizer(texts, kind=kind, vocab_size=vocab_size, special_tokens=special_tokens)


def save_tokenizer(tokenizer: Any, out_dir: Path) -> None:
    """Save the tokenizer in ``out_dir`` so ``from_pretrained(out_dir)`` finds it."""
    if hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(out_dir)
    else:
        backend_of(tokenizer).save(str(out_dir / "tokenizer.json"))


def special_token_id(tokenizer: Any, name: str) -> int | None:
    """Id of the ``name`` special token (eos, bos, cls, sep, mask, pad, unk), or None."""
    if not isinstance(tokenizer, BackendTokenizer):
        value = getattr(tokenizer, f"{name}_token_id", None)
        if value is not None:
            return int(value)
    backend = backend_of(tokenizer)
    for spelling in _SPECIAL_SPELLINGS.get(name, ()):
        found = backend.token_to_id(spelling)
        if found is not None:
            return int(found)
    return None


def vocab_size_of(tokenizer: Any) -> int:
    """Number of ids the tokenizer can produce, added tokens included."""
    return int(backend_of(tokenizer).get_vocab_size(with_added_tokens=True))


def all_special_ids(tokenizer: Any) -> set[int]:
    """Ids of every special added token (never masked, never drawn as random replacements)."""
    ids = {i for name in _SPECIAL_SPELLINGS if (i := special_token_id(tokenizer, name)) is not None}
    backend = backend_of(tokenizer)
    for token_id, added in backend.get_added_tokens_decoder().items():
        if added.special:
            ids.add(int(token_id))
    return ids


def encoding_copy(tokenizer: Any) -> BackendTokenizer:
    """A private copy of the backend with padding and truncation off, for whole documents."""
    copy = BackendTokenizer.from_str(backend_of(tokenizer).to_str())
    copy.no_padding()
    copy.no_truncation()
    return copy


def encode_texts(backend: BackendTokenizer, texts: list[str]) -> list[np.ndarray]:
    """Encode a batch of texts without special tokens, in parallel inside ``tokenizers``."""
    encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
    return [np.asarray(e.ids, dtype=np.int64) for e in encode(texts, add_special_tokens=False)]
