"""The real Gemma 3 270M file (Q4_K_M) against transformers' GGUF loader: logits within 1e-3 on the
dequantized path, the same greedy continuation and the same token ids; and as stored, in the int4/int8
kernels. A local check: skipped, with the reason, where the file is absent (see `gemma3_file`)."""

from __future__ import annotations

import warnings

import pytest
import torch
from gemma3_file import find_gemma3_gguf

from llmos import AutoModelForCausalLM, AutoTokenizer
from llmos.kernels import GroupInt8Linear, Int4Linear

PATH, REASON = find_gemma3_gguf()
pytestmark = [pytest.mark.skipif(PATH is None, reason=REASON), pytest.mark.slow, pytest.mark.parity]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\nFirst Citizen:\n"
        "You are all resolved rather to die than to famish?")


@pytest.fixture(scope="module")
def theirs():
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.AutoModelForCausalLM.from_pretrained(PATH.parent, gguf_file=PATH.name,
                                                                 dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def tokenizers():
    import transformers

    return AutoTokenizer.from_pretrained(PATH), transformers.AutoTokenizer.from_pretrained(PATH.parent,
                                                                                           gguf_file=PATH.name)


@pytest.fixture(scope="module")
def ours():
    return AutoModelForCausalLM.from_pretrained(PATH, quantize="none")


def test_token_ids_match_transformers(tokenizers):
    mine, theirs = tokenizers
    for text in (TEXT, "  two spaces, tabs\t, 你好 😀 and <start_of_turn>user\nhi<end_of_turn>\n", ""):
        assert mine(text)["input_ids"] == theirs(text)["input_ids"]
    assert mine.encode(TEXT)[0] == mine.bos_token_id == 2


def test_logits_match_transformers_within_1e_3_on_the_dequantized_path(ours, theirs, tokenizers):
    ids = torch.tensor([tokenizers[0].encode(TEXT)])
    with torch.no_grad():
        expected, actual = theirs(ids).logits, ours(ids).logits
    assert ids.shape[1] >= 40
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-3)


def test_greedy_continuation_matches_transformers(ours, theirs, tokenizers):
    ids = torch.tensor([tokenizers[0].encode(TEXT)])
    expected = theirs.generate(ids, max_new_tokens=24, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(ids, max_new_tokens=24, do_sample=False), expected)


def test_as_stored_q4_k_and_q5_0_blocks_run_in_the_kernels_close_to_float(ours, tokenizers):
    stored = AutoModelForCausalLM.from_pretrained(PATH)  # quantize="auto"
    block = stored.transformer.blocks[0]
    assert isinstance(block.attn.out, Int4Linear)  # Q4_K
    assert isinstance(block.attn.qkv, GroupInt8Linear) and isinstance(block.mlp.up, GroupInt8Linear)  # Q5_0 (+Q8_0)
    ids = torch.tensor([tokenizers[0].encode(TEXT)])
    with torch.no_grad():
        a, b = stored(ids).logits, ours(ids).logits
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.9
