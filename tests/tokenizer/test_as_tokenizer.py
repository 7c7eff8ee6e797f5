"""as_tokenizer: the one conversion from whatever tokenizer a caller holds to an LLMOS Tokenizer."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer as BackendTokenizer

from llmos.errors import LLMOSError
from llmos.tokenizer import Tokenizer
from llmos.tokenizer.from_any import as_tokenizer

from .conftest import _byte_bpe

TEXT = "Hello world! The quick brown fox"


def test_an_llmos_tokenizer_and_a_directory_come_back_as_themselves(qwen2_dir):
    ours = Tokenizer.from_pretrained(qwen2_dir)
    assert as_tokenizer(ours) is ours
    from_dir = as_tokenizer(qwen2_dir)
    assert isinstance(from_dir, Tokenizer) and from_dir.encode(TEXT) == ours.encode(TEXT)
    assert as_tokenizer(qwen2_dir / "tokenizer.json").encode(TEXT) == ours.encode(TEXT)


def test_a_bare_tokenizers_tokenizer_gets_its_special_tokens_named_and_encodes_as_before():
    backend = _byte_bpe(["<|endoftext|>", "[PAD]"])
    before = backend.encode(TEXT).ids, backend.encode(TEXT, add_special_tokens=False).ids
    converted = as_tokenizer(backend)
    assert isinstance(converted, Tokenizer) and converted.backend_tokenizer is backend
    assert converted.eos_token == "<|endoftext|>" and converted.eos_token_id == backend.token_to_id("<|endoftext|>")
    assert converted.pad_token_id == backend.token_to_id("[PAD]") and converted.bos_token is None
    assert (converted.encode(TEXT), converted.encode(TEXT, add_special_tokens=False)) == before
    assert (backend.encode(TEXT).ids, backend.encode(TEXT, add_special_tokens=False).ids) == before
    assert as_tokenizer(backend) is converted  # converted once, then remembered


def test_a_transformers_fast_tokenizer_keeps_its_ids_specials_and_chat_template(llama3_dir):
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoTokenizer.from_pretrained(str(llama3_dir))
    ours = as_tokenizer(theirs)
    assert isinstance(ours, Tokenizer)
    assert ours.encode(TEXT) == theirs.encode(TEXT)
    assert (ours.bos_token_id, ours.eos_token_id) == (theirs.bos_token_id, theirs.eos_token_id)
    chat = [{"role": "user", "content": "hi"}]
    assert ours.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == \
        theirs.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)


def test_something_that_is_not_a_tokenizer_is_refused_by_its_type():
    with pytest.raises(LLMOSError, match="cannot use a int as a tokenizer"):
        as_tokenizer(42)
    with pytest.raises(LLMOSError):
        as_tokenizer(BackendTokenizer)  # the class, not an instance
