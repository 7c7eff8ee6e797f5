"""Bad input raises LLMOSError naming the value and what would be valid."""

from __future__ import annotations

import pytest

from llmos.errors import LLMOSError
from llmos.tokenizer import Tokenizer, train_tokenizer


def test_a_missing_directory_names_the_path_and_expected_files(tmp_path):
    with pytest.raises(LLMOSError, match="tokenizer.json") as info:
        Tokenizer.from_pretrained(tmp_path / "nope")
    assert "nope" in str(info.value)


def test_a_directory_without_tokenizer_json_names_the_path(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(LLMOSError, match="has no tokenizer.json") as info:
        Tokenizer.from_pretrained(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_padding_without_a_pad_token_says_how_to_set_one(llama3_dir):
    tok = Tokenizer.from_pretrained(llama3_dir)
    with pytest.raises(LLMOSError, match="pad_token = tokenizer.eos_token"):
        tok(["a", "b c"], padding=True)


def test_ragged_tensors_ask_for_padding(llama3_dir):
    with pytest.raises(LLMOSError, match="padding=True"):
        Tokenizer.from_pretrained(llama3_dir)(["a", "b c d e"], return_tensors="pt")


def test_a_pad_token_outside_the_vocabulary_is_rejected(llama3_dir):
    tok = Tokenizer.from_pretrained(llama3_dir)
    with pytest.raises(LLMOSError, match="not in the vocabulary"):
        tok.pad_token = "<|no-such-token|>"


def test_an_invalid_padding_side_lists_left_and_right(llama3_dir):
    tok = Tokenizer.from_pretrained(llama3_dir)
    with pytest.raises(LLMOSError, match="'left' or 'right'"):
        tok.padding_side = "middle"


def test_decode_of_a_2d_tensor_points_to_batch_decode(llama3_dir):
    import torch

    with pytest.raises(LLMOSError, match="batch_decode"):
        Tokenizer.from_pretrained(llama3_dir).decode(torch.zeros(2, 3, dtype=torch.long))


def test_training_on_an_empty_corpus_is_rejected():
    with pytest.raises(LLMOSError, match="empty"):
        train_tokenizer(["", "   "], kind="bpe", vocab_size=300)


def test_an_unknown_kind_lists_the_valid_kinds():
    with pytest.raises(LLMOSError, match="bpe, wordpiece, char"):
        train_tokenizer(["hello"], kind="sentencepiece")


@pytest.mark.parametrize("kind, vocab_size", [("bpe", 100), ("char", 5), ("wordpiece", 10)])
def test_a_vocab_below_alphabet_plus_specials_is_rejected(kind, vocab_size):
    with pytest.raises(LLMOSError, match="vocab_size"):
        train_tokenizer(["hello world, the quick brown fox"], kind=kind, vocab_size=vocab_size)
