"""Fixtures for the data tests: tiny tokenizers built in-process."""

from __future__ import annotations

import pytest
from corpus_samples import SPECIALS, WORDS, sample_text
from tokenizers import Tokenizer, models, pre_tokenizers, trainers


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
