"""Tiny deterministic corpora and the special tokens shared by the data tests."""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<|endoftext|>"]

WORDS = (
    "the quick brown fox jumps over a lazy dog while seven bright stars watch "
    "rivers carry stones to distant seas and old trees remember every storm"
).split()


def sample_text(index: int, n_words: int = 40) -> str:
    """A deterministic pseudo-sentence made of WORDS."""
    return " ".join(WORDS[(index * 7 + k * 3) % len(WORDS)] for k in range(n_words))


def write_text_corpus(folder: Path, n_docs: int, n_words: int = 40) -> list[Path]:
    """n_docs .txt files doc_000.txt.. in folder, each one document."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_docs):
        path = folder / f"doc_{i:03d}.txt"
        path.write_text(sample_text(i, n_words) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
