"""CausalBatches and eval_batches: shapes, shift, determinism, epochs, exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmos.data import CausalBatches, TokenShards, eval_batches, prepare
from llmos.errors import LLMOSError


@pytest.fixture
def shards(tmp_path, word_tokenizer, write_text_corpus) -> TokenShards:
    write_text_corpus(tmp_path / "corpus", 30)
    prepare(
        [tmp_path / "corpus"],
        tmp_path / "data",
        tokenizer=word_tokenizer,
        val_fraction=0.1,
        shard_tokens=100,
        progress=False,
    )
    return TokenShards(tmp_path / "data", "train")


@pytest.fixture
def unique_shards(tmp_path, big_vocab_tokenizer) -> TokenShards:
    """A stream in which every token but EOS occurs once, so a window's content names its start."""
    (tmp_path / "u").mkdir()
    for d in range(10):
        words = " ".join(f"w{d * 50 + k}" for k in range(50))
        (tmp_path / "u" / f"{d}.txt").write_text(words)
    prepare(
        [tmp_path / "u"],
        tmp_path / "udata",
        tokenizer=big_vocab_tokenizer,
        val_fraction=0.0,
        shard_tokens=64,
        progress=False,
    )
    return TokenShards(tmp_path / "udata", "train")


def _key(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(x.tolist())


def test_batches_are_long_tensors_with_y_shifted_by_one(shards):
    x, y = next(iter(CausalBatches(shards, batch_size=4, context=16)))
    assert x.shape == y.shape == (4, 16)
    assert x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    stream = shards.window(0, shards.num_tokens)
    for row_x, row_y in zip(x, y, strict=True):
        # Each row is a real window of the stream.
        starts = [s for s in range(len(stream) - 16) if np.array_equal(stream[s : s + 16], row_x)]
        assert any(np.array_equal(stream[s + 1 : s + 17], row_y) for s in starts)


def test_same_seed_same_batches_other_seed_other_batches(shards):
    a, b = CausalBatches(shards, 3, 8, seed=1), CausalBatches(shards, 3, 8, seed=1)
    c = CausalBatches(shards, 3, 8, seed=2)
    batches_a = [next(a)[0] for _ in range(5)]
    assert all(torch.equal(p, next(b)[0]) for p in batches_a)
    assert not all(torch.equal(p, next(c)[0]) for p in batches_a)


def test_no_window_is_seen_twice_within_an_epoch(shards):
    batches = CausalBatches(shards, batch_size=1, context=8, seed=0)
    n = batches.windows_per_epoch()
    assert n == (shards.num_tokens - 1 - batches._plan(0)[0]) // 8
    starts = np.concatenate([batches._take(1) for _ in range(n)])
    assert len(set(starts.tolist())) == n
    assert batches.epoch == 1 and batches.index == 0
    # The next epoch permutes differently (and may shift the cut points).
    next_epoch = np.concatenate([batches._take(1) for _ in range(n)])
    assert not np.array_equal(starts, next_epoch)


def test_resume_mid_epoch_continues_with_identical_batches(unique_shards):
    shards = unique_shards
    reference = CausalBatches(shards, batch_size=4, context=8, seed=7)
    per_epoch = reference.windows_per_epoch()
    total = 3 * per_epoch // 4 + 2  # runs across an epoch boundary
    expected = [next(reference) for _ in range(total)]

    first = CausalBatches(shards, batch_size=4, context=8, seed=7)
    seen = [next(first) for _ in range(5)]
    state = first.state_dict()
    assert state["epoch"] == 0 and state["index"] == 20

    resumed = CausalBatches(shards, batch_size=4, context=8, seed=7)
    resumed.load_state_dict(state)
    seen += [next(resumed) for _ in range(total - 5)]
    for (ex, ey), (sx, sy) in zip(expected, seen, strict=True):
        assert torch.equal(ex, sx) and torch.equal(ey, sy)
    epoch0 = [_key(r) for x, _ in seen[: per_epoch // 4] for r in x]
    assert len(set(epoch0)) == len(epoch0)


def test_state_from_other_data_or_context_is_refused(shards):
    state = CausalBatches(shards, 2, 8).state_dict()
    with pytest.raises(LLMOSError, match="context"):
        CausalBatches(shards, 2, 16).load_state_dict(state)
    with pytest.raises(LLMOSError, match="seed"):
        CausalBatches(shards, 2, 8, seed=5).load_state_dict(state)


def test_data_parallel_ranks_split_each_global_batch(shards):
    single = CausalBatches(shards, batch_size=4, context=8, seed=3)
    ranks = [CausalBatches(shards, 2, 8, seed=3, rank=r, world_size=2) for r in range(2)]
    for _ in range(6):
        x, _ = next(single)
        assert torch.equal(torch.cat([next(r)[0] for r in ranks]), x)


def test_context_longer_than_the_split_is_an_error(shards):
    with pytest.raises(LLMOSError, match="context"):
        CausalBatches(shards, 2, shards.num_tokens)


def test_eval_batches_are_fixed_and_cover_the_split(tmp_path, shards):
    val = TokenShards(shards.data_dir, "val")
    first = eval_batches(val, batch_size=2, context=8, n_batches=3)
    again = eval_batches(val, batch_size=2, context=8, n_batches=3)
    assert len(first) == 3
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(first, again, strict=True)
    )
    assert torch.equal(first[0][0][0], torch.from_numpy(val.window(0, 8)))
    last_x = first[-1][0][-1]
    assert torch.equal(last_x, torch.from_numpy(val.window(val.num_tokens - 9, 8)))
