"""Fixtures for the data tests: tiny tokenizers built in-process and tiny corpora in tmp_path.

Helpers are handed out as fixtures (pytest runs with --import-mode=importlib,
so test modules cannot import from this folder).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

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


@pytest.fixture(name="sample_text")
def sample_text_fixture():
    """The sample_text(index, n_words=40) function."""
    return sample_text


@pytest.fixture(name="write_text_corpus")
def write_text_corpus_fixture():
    """The write_text_corpus(folder, n_docs, n_words=40) function."""
    return write_text_corpus


@pytest.fixture
def word_tokenizer() -> Tokenizer:
    """A word-level tokenizer: one id per word of WORDS, plus the specials (ids 0..5)."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(SPECIALS)
    return tok


@pytest.fixture
def big_vocab_tokenizer() -> Tokenizer:
    """A word-level tokenizer with 70,000 words w0..w69999, so ids need 32 bits."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for i in range(70_000):
        vocab[f"w{i}"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(SPECIALS)
    return tok


@pytest.fixture
def bpe_tokenizer() -> Tokenizer:
    """A small BPE tokenizer trained on sample text."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator([sample_text(i) for i in range(50)], trainer=trainer)
    return tok
