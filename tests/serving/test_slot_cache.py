"""SlotCache: rows join and leave a running batch, and every row decodes exactly as if alone."""

from __future__ import annotations

import pytest
import torch

from llmos.config import ModelConfig
from llmos.model import CausalLM
from llmos.model.cache import KVCache
from llmos.serving.slot_cache import SlotCache


def tiny_model(**overrides) -> CausalLM:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64,
                         position="rope", norm="rmsnorm", mlp="swiglu", **overrides)
    return CausalLM(config).eval()


def prefill(model: CausalLM, ids: list[int]) -> tuple[KVCache, slice, torch.Tensor]:
    """A prompt's cache, the columns it filled, and its last logits."""
    scratch = KVCache(model.config, 1, len(ids))
    out = model(torch.tensor([ids]), cache=scratch)
    return scratch, slice(0, len(ids)), out.logits[0, -1]


def solo_logits(model: CausalLM, ids: list[int]) -> torch.Tensor:
    return model(torch.tensor([ids])).logits[0, -1]


@pytest.mark.parametrize("overrides", [{}, {"sliding_window": 6}])
@torch.no_grad()
def test_rows_joining_and_leaving_decode_exactly_as_alone(overrides):
    model = tiny_model(**overrides)
    cache = SlotCache(model.config, max_batch=3, max_len=24)
    histories: list[list[int]] = []  # histories[row] = that request's ids so far
    lengths = iter([5, 9, 2, 7, 3, 11, 4])  # prompts of varied length arrive over time
    step, compactions = 0, 0
    compact = cache.compact

    def counting_compact() -> None:
        nonlocal compactions
        compactions += cache.start > 0
        compact()

    cache.compact = counting_compact
    while step < 40:
        if cache.free_rows and step % 3 == 0:
            n = next(lengths, None)
            if n is not None:
                ids = torch.randint(0, 97, (n,)).tolist()
                scratch, columns, _ = prefill(model, ids)
                assert cache.insert(scratch, 0, columns) == len(histories)
                histories.append(ids)
        if not histories:
            break
        mask, positions = cache.decode_inputs()
        # feed each row a fresh token, compare with the row's history decoded alone
        new = torch.randint(0, 97, (len(histories),))
        out = model(new[:, None], attention_mask=mask, position_ids=positions, cache=cache)
        for row, ids in enumerate(histories):
            ids.append(int(new[row]))
            torch.testing.assert_close(out.logits[row, -1], solo_logits(model, ids), atol=1e-4, rtol=1e-4)
        for row in range(len(histories) - 1, -1, -1):  # retire rows that reached 14 tokens
            if len(histories[row]) >= 14:
                moved = cache.remove(row)
                if moved is not None:
                    histories[row] = histories[moved]
                histories.pop()
        step += 1
    assert step > 20 and compactions  # long enough to wrap the 24-column buffer


@torch.no_grad()
def test_attention_window_follows_the_longest_active_row_not_the_server_uptime():
    model = tiny_model()
    cache = SlotCache(model.config, max_batch=2, max_len=64)
    scratch, columns, _ = prefill(model, list(range(20)))
    cache.insert(scratch, 0, columns)  # a long-running request
    scratch, columns, _ = prefill(model, [1, 2, 3])
    cache.insert(scratch, 0, columns)  # a short one joins
    for token in range(10):
        mask, positions = cache.decode_inputs()
        model(torch.tensor([[token], [token]]), attention_mask=mask, position_ids=positions, cache=cache)
    assert positions.flatten().tolist() == [29, 12]
    cache.remove(0)  # the long request finishes; the short one (13 tokens) moves to row 0
    mask, positions = cache.decode_inputs()
    assert cache.length == 13  # the model attends over 13 + 1 columns, not 30 + 1
    assert mask is None  # one row spans the whole window: no mask needed
    assert positions.tolist() == [[13]]


def test_a_single_row_needs_no_mask_and_several_unequal_rows_do():
    config = tiny_model().config
    cache = SlotCache(config, max_batch=2, max_len=16)
    filled = KVCache(config, 1, max_len=4)
    cache.insert(filled, 0, slice(0, 4))
    assert cache.decode_inputs()[0] is None
    cache.insert(filled, 0, slice(0, 2))
    mask, positions = cache.decode_inputs()
    assert mask.tolist() == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    assert positions.tolist() == [[4], [2]]


def test_writing_past_the_buffer_is_the_model_caches_clear_overflow_error():
    """The slot cache stores keys and values with the model cache's code, so it refuses an overflow
    the same way instead of failing inside a tensor copy."""
    config = tiny_model().config
    shape = (1, config.n_kv_heads, 5, config.head_dim)
    with pytest.raises(ValueError, match="KV cache overflow: 5 positions requested.*max_len=4"):
        KVCache(config, 1, max_len=4).positions(5, torch.device("cpu"))
    cache = SlotCache(config, max_batch=1, max_len=4)
    with pytest.raises(ValueError, match="KV cache overflow: 5 positions requested.*max_len=4"):
        cache.update(0, torch.zeros(shape), torch.zeros(shape), cache.positions(5, torch.device("cpu")))
