"""Tokenizer ids, masks, padding, truncation and decoding match transformers on Llama-3, Qwen2 and BERT layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmos.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.parity

TEXTS = [
    "Hello world, don't panic!",
    "The quick brown fox jumps over the lazy dog. 1234567",
    "café naïve <|im_end|> <tool_call> x",
    "",
]
PAIRS = ["To be, or not to be?", "a", "Whether 'tis nobler in the mind", "the sea"]


def _pair(directory):
    hf = transformers.AutoTokenizer.from_pretrained(str(directory))
    ours = Tokenizer.from_pretrained(directory)
    if hf.pad_token is None:  # Llama-3 ships without one; the usual fix, applied to both
        hf.pad_token = hf.eos_token
        ours.pad_token = ours.eos_token
    return hf, ours


def _same(hf_out, ours_out) -> None:
    assert sorted(hf_out.keys()) == sorted(ours_out.keys())
    for key in hf_out:
        expected, got = hf_out[key], ours_out[key]
        if isinstance(expected, torch.Tensor):
            assert isinstance(got, torch.Tensor) and got.dtype == torch.long
            assert torch.equal(expected, got), key
        else:
            assert expected == got, key


@pytest.mark.parametrize("name", ["llama3", "qwen2", "bert"])
def test_encode_and_decode_match_transformers(all_dirs, name):
    hf, ours = _pair(all_dirs[name])
    for text in TEXTS:
        for special in (True, False):
            ids = ours.encode(text, add_special_tokens=special)
            assert ids == hf.encode(text, add_special_tokens=special)
            for skip in (True, False):
                assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(
                    ids, skip_special_tokens=skip
                )
        assert ours.tokenize(text) == hf.tokenize(text)


@pytest.mark.parametrize("name", ["llama3", "qwen2", "bert"])
def test_special_tokens_and_sizes_match_transformers(all_dirs, name):
    hf, ours = _pair(all_dirs[name])
    assert ours.vocab_size == hf.vocab_size
    assert len(ours) == len(hf)
    assert ours.all_special_ids == hf.all_special_ids
    assert ours.special_tokens_map == hf.special_tokens_map
    for attr in ("bos", "eos", "pad", "unk", "mask", "cls", "sep"):
        assert getattr(ours, f"{attr}_token") == getattr(hf, f"{attr}_token"), attr
        assert getattr(ours, f"{attr}_token_id") == getattr(hf, f"{attr}_token_id"), attr
    assert ours.model_max_length == hf.model_max_length
    assert ours.padding_side == hf.padding_side


def test_special_tokens_read_from_strings_and_content_dicts(llama3_dir, bert_dir):
    llama = Tokenizer.from_pretrained(llama3_dir)
    bert = Tokenizer.from_pretrained(bert_dir)  # given only in special_tokens_map.json, as dicts
    assert (llama.bos_token, llama.eos_token, llama.pad_token) == (
        "<|begin_of_text|>",
        "<|eot_id|>",
        None,
    )
    assert (bert.cls_token, bert.sep_token, bert.mask_token) == ("[CLS]", "[SEP]", "[MASK]")
    assert bert.convert_ids_to_tokens(bert.encode("hello")[0]) == "[CLS]"


@pytest.mark.parametrize("name", ["llama3", "qwen2", "bert"])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"padding": True},
        {"padding": "longest", "return_tensors": "pt"},
        {"padding": "max_length", "max_length": 24},
        {"padding": True, "truncation": True, "max_length": 7, "return_tensors": "pt"},
        {"max_length": 5},  # max_length alone turns truncation on, as in transformers
        {"truncation": True},  # model_max_length (12 for BERT)
    ],
)
def test_batch_padding_truncation_and_masks_match_transformers(all_dirs, name, side, kwargs):
    hf, ours = _pair(all_dirs[name])
    hf.padding_side = ours.padding_side = side
    hf.truncation_side = ours.truncation_side = side
    _same(hf(TEXTS, **kwargs), ours(TEXTS, **kwargs))
    _same(hf(TEXTS[1], **kwargs), ours(TEXTS[1], **kwargs))


@pytest.mark.parametrize("name", ["llama3", "qwen2", "bert"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"padding": True, "return_token_type_ids": True},
        {"padding": True, "truncation": "longest_first", "max_length": 9, "return_tensors": "pt"},
        {"padding": True, "truncation": "only_first", "max_length": 14},
    ],
)
def test_text_pairs_with_token_types_match_transformers(all_dirs, name, kwargs):
    hf, ours = _pair(all_dirs[name])
    _same(hf(TEXTS[:3], PAIRS[:3], **kwargs), ours(TEXTS[:3], PAIRS[:3], **kwargs))


def test_bert_pairs_mark_the_second_segment_with_type_one(bert_dir):
    out = Tokenizer.from_pretrained(bert_dir)("hello world", "the fox")
    types, ids = out["token_type_ids"], out["input_ids"]
    first_sep = ids.index(Tokenizer.from_pretrained(bert_dir).sep_token_id)
    assert types[: first_sep + 1] == [0] * (first_sep + 1)
    assert types[first_sep + 1 :] == [1] * (len(ids) - first_sep - 1)


def test_left_padding_puts_pads_and_zero_mask_before_the_text(qwen2_dir):
    tok = Tokenizer.from_pretrained(qwen2_dir)
    assert tok.padding_side == "left"  # read from tokenizer_config.json
    out = tok(["hi", "a much longer sentence here"], padding=True, return_tensors="pt")
    short_ids, short_mask = out["input_ids"][0], out["attention_mask"][0]
    n_pad = int((short_mask == 0).sum())
    assert (
        n_pad > 0
        and bool((short_mask[:n_pad] == 0).all())
        and bool((short_mask[n_pad:] == 1).all())
    )
    assert bool((short_ids[:n_pad] == tok.pad_token_id).all())
    assert short_ids[n_pad:].tolist() == tok.encode("hi")


def test_decode_accepts_lists_tensors_and_numpy_arrays(llama3_dir):
    tok = Tokenizer.from_pretrained(llama3_dir)
    ids = tok.encode("Hello world")
    text = tok.decode(ids)
    assert tok.decode(torch.tensor(ids)) == text
    assert tok.decode(np.array(ids)) == text
    assert tok.decode(ids, skip_special_tokens=True) == "Hello world"
    batch = tok(["Hello world", "fox"], add_special_tokens=False)["input_ids"]
    assert tok.batch_decode(batch) == ["Hello world", "fox"]


def test_encode_returns_a_batch_of_one_tensor_and_truncates(llama3_dir):
    tok = Tokenizer.from_pretrained(llama3_dir)
    ids = tok.encode("The quick brown fox jumps", return_tensors="pt")
    assert ids.shape == (1, len(tok.encode("The quick brown fox jumps")))
    assert (
        tok.encode("The quick brown fox jumps", truncation=True, max_length=3)
        == tok.encode("The quick brown fox jumps")[:3]
    )


def test_token_id_conversion_round_trips_and_unknown_maps_to_unk(bert_dir):
    tok = Tokenizer.from_pretrained(bert_dir)
    tokens = tok.tokenize("hello world")
    ids = tok.convert_tokens_to_ids(tokens)
    assert tok.convert_ids_to_tokens(ids) == tokens
    assert tok.convert_tokens_to_ids("no-such-token-anywhere") == tok.unk_token_id


def test_setting_pad_token_and_padding_side(llama3_dir):
    tok = Tokenizer.from_pretrained(llama3_dir)
    tok.pad_token = tok.eos_token
    assert tok.pad_token_id == tok.eos_token_id
    tok.pad_token_id = tok.bos_token_id
    assert tok.pad_token == tok.bos_token
    tok.padding_side = "left"
    assert tok(["a", "a b c"], padding=True)["attention_mask"][0][0] == 0
