"""Greedy and beam search give the same tokens as transformers.generate on the same weights."""

import pytest
import torch

from llmos import AutoModelForCausalLM
from llmos.generation.decode_step import set_compile

pytest.importorskip("transformers")
from pairs import gpt2_pair, llama_pair  # noqa: E402

pytestmark = pytest.mark.parity
PAIRS = {"gpt2": gpt2_pair, "llama": llama_pair}
BEAM = dict(num_beams=4, length_penalty=1.3, early_stopping=True, num_return_sequences=2)


def _padded_batch(vocab: int, pad: int):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(4, vocab, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    mask[2, :1] = 0
    return ids.masked_fill(mask == 0, pad), mask


@pytest.fixture(params=["eager", "compiled"])
def decode_step(request):
    """Each case runs with eager decode steps and with the compiled step (`generation.decode_step`)."""
    set_compile(request.param == "compiled")
    yield request.param
    set_compile(None)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("options", [{}, BEAM, dict(num_beams=3, length_penalty=0.5, early_stopping="never")],
                         ids=["greedy", "beam4", "beam3-never"])
def test_generation_matches_transformers_batch_of_one(family, options, decode_step):
    hf, ours = PAIRS[family](eos=3, pad=1)
    ids = torch.randint(4, 256, (1, 7), generator=torch.Generator().manual_seed(0))
    expected = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False,
                           **options)
    got = ours.generate(ids, max_new_tokens=16, **options)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("options", [{}, BEAM], ids=["greedy", "beam4"])
def test_generation_matches_transformers_on_a_left_padded_batch(family, options, decode_step):
    hf, ours = PAIRS[family](eos=3, pad=1)
    ids, mask = _padded_batch(256, pad=1)
    expected = hf.generate(ids, attention_mask=mask, max_new_tokens=14, do_sample=False, **options)
    got = ours.generate(ids, attention_mask=mask, max_new_tokens=14, **options)
    assert torch.equal(got, expected)


def test_beam_search_stops_early_on_eos_like_transformers():
    # A frequent EOS id makes hypotheses finish at different lengths: exercises the pool bookkeeping.
    hf, ours = gpt2_pair(vocab=32, eos=5, pad=1, std=0.3, seed=3)
    ids = torch.randint(6, 32, (2, 5), generator=torch.Generator().manual_seed(2))
    for early_stopping in (True, False, "never"):
        kw = dict(num_beams=4, num_return_sequences=4, early_stopping=early_stopping, max_new_tokens=12)
        expected = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, **kw)
        got = ours.generate(ids, **kw)
        assert torch.equal(got, expected), early_stopping


def test_per_sequence_stopping_pads_finished_rows_like_transformers():
    hf, ours = llama_pair(vocab=32, eos=5, pad=1, std=0.3, seed=4)
    ids = torch.randint(6, 32, (4, 6), generator=torch.Generator().manual_seed(5))
    expected = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=30, do_sample=False)
    got = ours.generate(ids, max_new_tokens=30)
    assert (got == 5).any()  # some row did stop early
    assert torch.equal(got, expected)


def test_beam_scores_match_transformers_sequence_scores():
    hf, ours = gpt2_pair(eos=3, pad=1)
    ids = torch.randint(4, 256, (1, 6), generator=torch.Generator().manual_seed(7))
    kw = dict(num_beams=4, num_return_sequences=3, max_new_tokens=10, return_dict_in_generate=True,
              output_scores=True)
    expected = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, **kw)
    got = ours.generate(ids, **kw)
    assert torch.equal(got.sequences, expected.sequences)
    torch.testing.assert_close(got.sequences_scores, expected.sequences_scores, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_checkpoint_loaded_with_auto_generates_like_transformers(family, tmp_path):
    hf, _ = PAIRS[family](eos=3, pad=1)
    hf.save_pretrained(tmp_path)
    ours = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids, mask = _padded_batch(256, pad=1)
    for options in ({}, BEAM):
        expected = hf.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False, **options)
        assert torch.equal(ours.generate(ids, attention_mask=mask, max_new_tokens=10, **options), expected)


@pytest.mark.parametrize("options", [{}, BEAM], ids=["greedy", "beam4"])
def test_generate_output_is_indexed_like_transformers(options):
    hf, ours = llama_pair(eos=3, pad=1)
    ids = torch.randint(4, 256, (1, 7), generator=torch.Generator().manual_seed(0))
    kw = dict(max_new_tokens=5, return_dict_in_generate=True, output_scores=True, **options)
    theirs = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, **kw)
    got = ours.generate(ids, **kw)
    shared = [key for key in theirs.keys() if key in got.keys()]
    assert shared == [key for key in got.keys() if key in theirs.keys()]  # the same order
    assert {"sequences", "scores"} <= set(shared) and ("sequences_scores" in shared) == bool(options)
    assert torch.equal(got[0], theirs[0]) and torch.equal(got["sequences"], theirs["sequences"])
    assert got.to_tuple()[0] is got.sequences
