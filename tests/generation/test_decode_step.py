"""The compiled decode step: the same tokens as eager, one graph per row-count class whatever the
length, a generation's later steps replayed without Dynamo, eager with one switch, and eager (said
once) when compiling fails."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from llmos.config import ModelConfig
from llmos.generation import decode_step, graph_replay
from llmos.generation.decode_step import set_compile
from llmos.model import CausalLM


@pytest.fixture
def model():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=97, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=128,
                         position="rope", norm="rmsnorm", mlp="swiglu")
    yield CausalLM(config).eval()
    set_compile(None)


def graphs() -> int:
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def generate_both(model, ids, **kw):
    set_compile(False)
    eager = model.generate(ids, do_sample=False, **kw)
    set_compile(True)
    return eager, model.generate(ids, do_sample=False, **kw)


def test_compiled_steps_decode_the_eager_tokens_with_one_graph_per_row_class(model):
    before = graphs()
    for length, new in ((7, 20), (30, 40)):  # another cache length: the same graph
        eager, compiled = generate_both(model, torch.randint(0, 97, (1, length)), max_new_tokens=new)
        assert torch.equal(eager, compiled)
    assert graphs() - before == 1
    ids = torch.randint(0, 97, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # a left-padded row
    for options in ({}, {"num_beams": 3}):  # several rows, beams reordering the cache
        eager, compiled = generate_both(model, ids, attention_mask=mask, max_new_tokens=12, **options)
        assert torch.equal(eager, compiled)
    eager, compiled = generate_both(model, torch.randint(0, 97, (5, 4)), max_new_tokens=6)
    assert torch.equal(eager, compiled)
    assert graphs() - before == 2  # 1 row, and one graph for every count of rows above it


def test_switched_off_nothing_is_compiled(model, monkeypatch):
    monkeypatch.setenv("LLMOS_COMPILE", "0")
    before = graphs()
    model.generate(torch.randint(0, 97, (1, 5)), max_new_tokens=5, do_sample=False)
    assert graphs() == before and not hasattr(model, "_llmos_decode_step")


def test_a_failed_compile_falls_back_to_eager_and_says_so_once(model, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler here\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    set_compile(True)
    ids = torch.randint(0, 97, (1, 5))
    with caplog.at_level(logging.WARNING, logger="llmos.compile"):
        first = model.generate(ids, max_new_tokens=6, do_sample=False)
        second = model.generate(ids, max_new_tokens=6, do_sample=False)
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1 and "no C++ compiler here" in failures[0].getMessage()
    assert "more detail" not in failures[0].getMessage()
    set_compile(False)
    assert torch.equal(first, model.generate(ids, max_new_tokens=6, do_sample=False)) and torch.equal(first, second)
    assert decode_step.compile_wanted(model) is False


def test_inductor_caches_under_ours_keyed_by_the_kernels_build_unless_another_was_chosen(monkeypatch, tmp_path):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from llmos.kernels import build

    monkeypatch.setenv("LLMOS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what importing torch._dynamo writes
    decode_step.use_our_inductor_cache()
    ours = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    assert ours.startswith(str(tmp_path / "inductor")) and ours.endswith(f"-int_dot-{build.source_hash()}")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    decode_step.use_our_inductor_cache()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")


def counting_dynamo_calls(model, monkeypatch) -> tuple[list[int], list[int]]:
    """Counts of the step's calls through Dynamo and of its replays, from now on."""
    through, replayed = [0], [0]
    steps = model._llmos_decode_step
    compiled = steps[decode_step._kv_step]

    def through_dynamo(*args):
        through[0] += 1
        return compiled(*args)

    steps[decode_step._kv_step] = through_dynamo
    replay = graph_replay.Replay.__call__

    def counted_replay(self, args):
        replayed[0] += 1
        return replay(self, args)

    monkeypatch.setattr(graph_replay.Replay, "__call__", counted_replay)
    return through, replayed


def test_a_generations_later_steps_replay_its_first_steps_graph_without_dynamo(model, monkeypatch):
    ids = torch.randint(0, 97, (1, 6))
    generate_both(model, ids, max_new_tokens=3)  # compiled here
    through, replayed = counting_dynamo_calls(model, monkeypatch)
    eager, compiled = generate_both(model, ids, max_new_tokens=20)
    assert torch.equal(eager, compiled)
    assert through[0] == 1 and replayed[0] >= 17  # the first step through Dynamo, then replays
    rows = torch.randint(0, 97, (3, 5))
    eager, compiled = generate_both(model, rows, max_new_tokens=10)  # several rows: their own graph
    assert torch.equal(eager, compiled) and through[0] == 2


def test_a_model_changed_between_generations_is_checked_by_dynamo_again(model):
    ids = torch.randint(0, 97, (1, 6))
    generate_both(model, ids, max_new_tokens=8)
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight) * 3)  # a new tensor
    eager, compiled = generate_both(model, ids, max_new_tokens=8)
    assert torch.equal(eager, compiled)


SHIFT = torch.zeros(97)


class Scope:
    pass


def test_a_step_reading_a_tensor_outside_its_arguments_and_model_is_never_replayed(model):
    global SHIFT

    def step(model, tokens):
        return model(tokens).logits[:, -1] + SHIFT

    set_compile(True)
    scope, tokens = Scope(), torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        for value in (0.0, 1.0, 2.0):
            SHIFT = torch.full((97,), value)  # a new tensor, neither an argument nor the model's
            out = decode_step.run_step(model, step, (tokens,), lengths=[], scope=scope)
            torch.testing.assert_close(out, model(tokens).logits[:, -1] + value)
    assert scope not in decode_step._replays


def test_a_replay_given_shapes_its_graph_was_not_built_for_goes_back_through_dynamo(model):
    def step(model, tokens):
        return model(tokens).logits[:, -1]

    set_compile(True)
    scope = Scope()
    with torch.no_grad():
        for length in (3, 3, 5, 5):  # the graph of 3 tokens is specialised to them; 5 needs another
            tokens = torch.randint(0, 97, (1, length))
            out = decode_step.run_step(model, step, (tokens,), lengths=[], scope=scope)
            torch.testing.assert_close(out, model(tokens).logits[:, -1])
    assert len(decode_step._replays[scope]) == 1


def test_one_process_compiles_the_steps_of_many_models():
    # every model's steps are one code object to Dynamo: ten graphs, past its default limit of 8
    set_compile(True)
    try:
        for seed in range(5):
            torch.manual_seed(seed)
            config = ModelConfig(vocab_size=97, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, max_seq_len=64,
                                 position="rope", norm="rmsnorm", mlp="swiglu")
            model = CausalLM(config).eval()
            for rows in (1, 2):
                eager, compiled = generate_both(model, torch.randint(0, 97, (rows, 4)), max_new_tokens=4)
                assert torch.equal(eager, compiled)
            assert decode_step.compile_wanted(model)  # not fallen back to eager
    finally:
        set_compile(None)
