"""ServedTokenizer converts whatever tokenizer the server is given to an LLMOS Tokenizer once, at
the entry; encoding, decoding and the stop tokens are then the same whichever kind it was."""

from __future__ import annotations

import pytest

from llmos.serving.text import ServedTokenizer
from llmos.tokenizer import Tokenizer

TEXT = "hello world, the quick brown fox"


def test_a_bare_and_a_transformers_tokenizer_serve_alike_through_an_llmos_tokenizer(tokenizer):
    transformers = pytest.importorskip("transformers")
    bare = ServedTokenizer(tokenizer)
    theirs = ServedTokenizer(transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer,
                                                                  eos_token="<|endoftext|>"))
    for served in (bare, theirs):
        assert isinstance(served.tokenizer, Tokenizer)
        assert served.encode(TEXT) == tokenizer.encode(TEXT, add_special_tokens=False).ids
        assert served.decode(served.encode(TEXT)) == TEXT
        assert served.tokenizer.eos_token_id == tokenizer.token_to_id("<|endoftext|>")
    assert bare.stop_token_ids == theirs.stop_token_ids
    assert bare.vocab_size == theirs.vocab_size == tokenizer.get_vocab_size()
