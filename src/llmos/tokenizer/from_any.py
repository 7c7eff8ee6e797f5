"""Layer 3 (formats): `as_tokenizer`, the one place a foreign tokenizer becomes an LLMOS `Tokenizer`.

Entry points (the server's `ServedTokenizer`, `generate(tokenizer=...)`, data
preparation) accept what people have at hand: an LLMOS `Tokenizer`, a
tokenizer directory or tokenizer.json file, a bare `tokenizers.Tokenizer`, or a
transformers fast tokenizer. They convert it here, once, and everything past
them takes only a `Tokenizer`, so no other module asks "which kind is this?".

A bare `tokenizers.Tokenizer` names no special tokens; `guess_special_tokens`
finds them by their common spellings (`<|endoftext|>`, `[CLS]`, ...). A
conversion is remembered per foreign object, so calling an entry point in a
loop costs the conversion once and the same `Tokenizer` (and its caches, such as
the grammar engine's view of the vocabulary) is reused.
"""

from __future__ import annotations

import tempfile
import weakref
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as BackendTokenizer

from llmos.errors import LLMOSError
from llmos.tokenizer.files import TokenizerSettings
from llmos.tokenizer.tokenizer import Tokenizer

# Spellings of special tokens tried on a tokenizer that does not name them, most common first.
SPECIAL_SPELLINGS = {
    "eos": ("<|endoftext|>", "</s>", "<eos>", "[EOS]", "<|end_of_text|>"),
    "bos": ("<s>", "<bos>", "[BOS]", "<|begin_of_text|>"),
    "cls": ("[CLS]", "<cls>"),
    "sep": ("[SEP]", "<sep>"),
    "mask": ("[MASK]", "<mask>"),
    "pad": ("[PAD]", "<pad>", "<|pad|>"),
    "unk": ("[UNK]", "<unk>"),
}

_CONVERTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def guess_special_tokens(backend: BackendTokenizer) -> dict[str, str]:
    """{"eos_token": "<|endoftext|>", ...}: each special token whose common spelling is in the vocabulary."""
    found = {}
    for name, spellings in SPECIAL_SPELLINGS.items():
        spelling = next((s for s in spellings if backend.token_to_id(s) is not None), None)
        if spelling is not None:
            found[f"{name}_token"] = spelling
    return found


def special_token_id(tokenizer: Tokenizer, name: str) -> int | None:
    """Id of the `name` special token (eos, bos, cls, sep, mask, pad, unk): the one the tokenizer
    names, else the first common spelling in its vocabulary, else None."""
    named = getattr(tokenizer, f"{name}_token_id", None)
    if named is not None:
        return int(named)
    backend = tokenizer.backend_tokenizer
    for spelling in SPECIAL_SPELLINGS.get(name, ()):
        found = backend.token_to_id(spelling)
        if found is not None:
            return int(found)
    return None


def as_tokenizer(tokenizer: Any) -> Tokenizer:
    """`tokenizer` as an LLMOS `Tokenizer`: itself when it is one, else converted (see module docstring)."""
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if isinstance(tokenizer, (str, Path)):
        return _from_path(Path(tokenizer))
    try:
        return _CONVERTED[tokenizer]
    except (KeyError, TypeError):
        pass
    if isinstance(tokenizer, BackendTokenizer):
        converted = _from_backend(tokenizer)
    elif isinstance(getattr(tokenizer, "backend_tokenizer", None), BackendTokenizer) and hasattr(
            tokenizer, "save_pretrained"):
        converted = _from_transformers(tokenizer)
    else:
        raise LLMOSError(
            f"cannot use a {type(tokenizer).__name__} as a tokenizer; give an llmos Tokenizer, a tokenizer "
            "directory, a tokenizers.Tokenizer or a transformers fast tokenizer"
        )
    try:
        _CONVERTED[tokenizer] = converted
    except TypeError:  # not weak-referenceable: converted again next time
        pass
    return converted


def _from_path(path: Path) -> Tokenizer:
    if path.is_file():
        return _from_backend(BackendTokenizer.from_file(str(path)))
    return Tokenizer.from_pretrained(path)


def _from_backend(backend: BackendTokenizer) -> Tokenizer:
    """The backend itself, not a copy (it may carry Python components, such as a custom decoder,
    that do not serialize), with its special tokens named. Its ids and texts stay as they were;
    like any `Tokenizer`, it installs an explicit post-processor where there was none."""
    return Tokenizer(backend, TokenizerSettings(special_tokens=guess_special_tokens(backend)))


def _from_transformers(tokenizer: Any) -> Tokenizer:
    """Through the Hugging Face directory layout both sides read and write: special tokens, chat
    template, padding side and added tokens come across as transformers itself would reload them."""
    with tempfile.TemporaryDirectory(prefix="llmos-tokenizer-") as directory:
        tokenizer.save_pretrained(directory)
        return Tokenizer.from_pretrained(directory)
