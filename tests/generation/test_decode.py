"""The greedy / sampling loop: cache correctness, reproducible sampling, stopping, outputs."""

import pytest
import torch

from llmos.config import ModelConfig
from llmos.generation import generate
from llmos.model import CausalLM
from llmos.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = ModelConfig.from_preset("nano", vocab_size=300, n_layers=2, max_seq_len=96,
                                     initializer_range=0.1)
    return CausalLM(config).eval()


@pytest.fixture(scope="module")
def tokenizer():
    corpus = ["the cat sat on the mat. Paris is nice.", "héllo wörld, naïve café"] * 20
    return train_tokenizer(corpus, kind="bpe", vocab_size=300, special_tokens=["<eos>"])


def test_cached_greedy_equals_recomputing_the_whole_sequence_each_step(model):
    ids = torch.randint(1, 300, (2, 6), generator=torch.Generator().manual_seed(1))
    out = generate(model, ids, max_new_tokens=12)
    seq = ids
    with torch.no_grad():
        for _ in range(12):
            seq = torch.cat([seq, model(seq).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, seq)


def test_left_padded_rows_generate_what_they_generate_alone(model):
    a, b = torch.tensor([[5, 9, 17, 33, 41]]), torch.tensor([[7, 8, 250]])
    batch = torch.tensor([[5, 9, 17, 33, 41], [0, 0, 7, 8, 250]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    out = generate(model, batch, attention_mask=mask, max_new_tokens=8)
    assert torch.equal(out[0, 5:], generate(model, a, max_new_tokens=8)[0, 5:])
    assert torch.equal(out[1, 5:], generate(model, b, max_new_tokens=8)[0, 3:])


def test_sampling_with_a_seed_is_reproducible_and_seeds_differ(model):
    ids = torch.tensor([[5, 6, 7]])
    kw = dict(do_sample=True, temperature=1.5, top_k=0, max_new_tokens=20)
    first = generate(model, ids, seed=123, **kw)
    assert torch.equal(first, generate(model, ids, seed=123, **kw))
    assert not torch.equal(first, generate(model, ids, seed=124, **kw))
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(generate(model, ids, generator=g1, **kw), generate(model, ids, generator=g2, **kw))


def test_sampled_tokens_stay_inside_the_top_k(model):
    ids = torch.tensor([[5, 6, 7]])
    out = generate(model, ids, do_sample=True, top_k=3, max_new_tokens=10, seed=0,
                   return_dict_in_generate=True, output_scores=True)
    for step, scores in enumerate(out.scores):
        assert torch.isfinite(scores).sum() == 3
        assert torch.isfinite(scores[0, out.sequences[0, 3 + step]])


def test_num_return_sequences_samples_several_continuations_per_prompt(model):
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    out = generate(model, ids, do_sample=True, num_return_sequences=3, max_new_tokens=6, seed=0,
                   temperature=2.0)
    assert out.shape == (6, 9)
    assert torch.equal(out[:3, :3], ids[:1].expand(3, 3)) and torch.equal(out[3:, :3], ids[1:].expand(3, 3))
    assert len({tuple(r) for r in out[:3].tolist()}) > 1


def test_eos_stops_a_row_and_pads_it(model):
    ids = torch.tensor([[5, 6, 7], [11, 12, 13]])
    free = generate(model, ids, max_new_tokens=10, eos_token_id=None)
    row0, row1 = free[0, 3:].tolist(), free[1, 3:].tolist()
    # a token row 0 produces (first, from its third token on) and row 1 never does: row 1 runs on
    stop = next(i for i, t in enumerate(row0) if i >= 2 and t not in row0[:i] and t not in row1)
    eos = row0[stop]
    out = generate(model, ids, max_new_tokens=10, eos_token_id=eos, pad_token_id=299)
    assert out[0, 3 + stop] == eos and (out[0, 4 + stop:] == 299).all()
    assert out[0, 3:3 + stop].tolist() == row0[:stop]
    assert out.shape[1] == 13 and out[1, 3:].tolist() == row1
    eos_list = generate(model, ids[:1], max_new_tokens=10, eos_token_id=[298, eos])
    assert eos_list.shape[1] == 4 + stop


def test_return_dict_gives_scores_logits_and_chosen_token_log_probs(model):
    ids = torch.tensor([[5, 6, 7]])
    out = generate(model, ids, max_new_tokens=4, return_dict_in_generate=True, output_scores=True,
                   output_logits=True)
    assert len(out.scores) == 4 and out.scores[0].shape == (1, 300) and len(out.logits) == 4
    expected = torch.stack([torch.log_softmax(s, -1)[0, t] for s, t in zip(out.scores, out.sequences[0, 3:],
                                                                              strict=True)])
    torch.testing.assert_close(out.token_log_probs[0], expected)
    assert (out.token_log_probs <= 0).all()


def test_min_new_tokens_delays_eos(model):
    ids = torch.tensor([[5, 6, 7]])
    first = int(generate(model, ids, max_new_tokens=1)[0, -1])
    out = generate(model, ids, max_new_tokens=6, min_new_tokens=4, eos_token_id=first)
    assert first not in out[0, 3:7].tolist()


def test_stop_string_spanning_tokens_stops_generation(model, tokenizer):
    ids = torch.tensor([tokenizer.encode("the cat", add_special_tokens=False)])
    free = generate(model, ids, max_new_tokens=30, eos_token_id=None)
    new_text = tokenizer.decode(free[0, ids.shape[1]:].tolist())
    # a stop string made of the end of one token's text and the start of the next ones
    pieces = [tokenizer.decode([t]) for t in free[0, ids.shape[1]:].tolist()]
    stop = (pieces[3][-1:] + pieces[4] + pieces[5][:1]) if pieces[3] and pieces[5] else pieces[4]
    assert stop in new_text
    out = generate(model, ids, max_new_tokens=30, eos_token_id=None, stop_strings=[stop], tokenizer=tokenizer)
    text = tokenizer.decode(out[0, ids.shape[1]:].tolist())
    assert stop in text and out.shape[1] <= ids.shape[1] + 6
    assert stop not in tokenizer.decode(out[0, ids.shape[1]:-1].tolist())  # stopped at the first match


def test_beam_sampling_is_reproducible_and_returns_the_requested_sequences(model):
    ids = torch.tensor([[5, 6, 7]])
    kw = dict(do_sample=True, num_beams=3, num_return_sequences=2, max_new_tokens=8, seed=5)
    a = generate(model, ids, **kw)
    assert a.shape[0] == 2 and torch.equal(a, generate(model, ids, **kw))


def test_generate_is_available_on_the_model_and_keeps_training_mode(model):
    model.train()
    out = model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=3)
    assert out.shape == (1, 6) and model.training
    model.eval()
