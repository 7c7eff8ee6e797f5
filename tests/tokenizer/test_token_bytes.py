"""The bytes behind each token, for logprob listings: joined, they are the text's UTF-8 bytes.

Byte-level BPE spells bytes with stand-in characters, SentencePiece has "<0xNN>"
byte tokens and "▁" for spaces; a token holding part of a character still has
exact bytes, and its name is "bytes:" + the escaped bytes, as OpenAI writes it.
"""

from __future__ import annotations

import pytest
from gguf_tokenizers import gguf_tokenizer

from llmos.tokenizer import train_tokenizer
from llmos.tokenizer.token_bytes import TokenBytes, token_text

TEXTS = ["你好，世界！今天天气很好。", "mixed 文本 with emoji 😀👍🏽 and 𠀀", "Hello world!\n  def add(a, b):"]


@pytest.fixture(scope="module", params=["byte-level", "gguf-gpt2", "gguf-llama"])
def tokenizer(request, tmp_path_factory):
    if request.param == "byte-level":
        return train_tokenizer(TEXTS * 5, kind="bpe", vocab_size=300, min_frequency=2)
    return gguf_tokenizer(request.param.removeprefix("gguf-"), tmp_path_factory.mktemp(request.param))


@pytest.mark.parametrize("text", TEXTS)
def test_token_bytes_join_into_the_texts_utf8(tokenizer, text):
    token_bytes = TokenBytes(tokenizer.backend_tokenizer)
    ids = tokenizer.encode(text, add_special_tokens=False)
    joined = b"".join(token_bytes(i) for i in ids)
    assert joined.decode("utf-8").removeprefix(" ") == text.removeprefix(" ")  # "▁" adds a leading space


def test_tokens_holding_part_of_a_character_are_named_by_their_bytes(tokenizer):
    token_bytes = TokenBytes(tokenizer.backend_tokenizer)
    names = [token_text(token_bytes(i)) for i in tokenizer.encode("😀", add_special_tokens=False)]
    names = [name for name in names if name != " "]  # SentencePiece's leading "▁"
    assert len(names) > 1 and all(name.startswith("bytes:\\x") for name in names)
    assert "".join(names).replace("bytes:", "") == "\\xf0\\x9f\\x98\\x80"


def test_special_tokens_are_their_own_text():
    tokenizer = train_tokenizer(TEXTS * 5, kind="bpe", vocab_size=300, special_tokens=["<|im_end|>"])
    token_bytes = TokenBytes(tokenizer.backend_tokenizer)
    assert token_text(token_bytes(tokenizer.convert_tokens_to_ids("<|im_end|>"))) == "<|im_end|>"
