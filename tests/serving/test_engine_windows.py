"""A model whose sliding-window layers alternate with global ones (Gemma 3's shape) decodes the same
tokens through the paged serving cache and the compiled decode step as through full forward passes."""

from __future__ import annotations

import torch

from llmos.config import ModelConfig
from llmos.generation.decode_step import set_compile
from llmos.model import CausalLM
from llmos.serving.engine import Engine
from llmos.serving.sampling import SamplingParams

from .test_engine_batching import Recorder, solo_tokens


def windowed_model() -> CausalLM:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=200, d_model=32, n_layers=3, n_heads=4, n_kv_heads=2, head_dim=16, d_ff=48,
                         max_seq_len=96, position="rope", rope_theta=1e6, local_rope_theta=1e4, norm="rmsnorm",
                         norm_weight_offset=1.0, sandwich_norm=True, qk_norm=True, mlp="geglu", mlp_bias=False,
                         qkv_bias=False, attn_out_bias=False, sliding_window=4, sliding_window_pattern=3,
                         scale_embeddings=True, attn_scale=0.3, tie_embeddings=False)
    model = CausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.3)
        model.lm_head.weight.mul_(20.0)  # sharp distributions: greedy never sits on a near-tie
    return model


@torch.no_grad()
def test_paged_cache_applies_each_layers_own_window():
    model = windowed_model()
    engine = Engine(model, max_batch=4, chunk_tokens=5)
    greedy = SamplingParams(max_tokens=14, temperature=0)
    prompts = [[5, 6, 7], [(i * 7) % 190 + 3 for i in range(12)]]  # the second is prefilled in chunks of 5
    recorders = [Recorder(engine) for _ in prompts]
    for prompt, recorder in zip(prompts, recorders, strict=True):
        engine.submit(prompt, greedy, recorder)
    for _ in range(40):
        engine.step()
    for prompt, recorder in zip(prompts, recorders, strict=True):
        assert recorder.tokens == solo_tokens(model, prompt, 14)


@torch.no_grad()
def test_compiled_step_applies_each_layers_own_window_and_rope():
    model = windowed_model()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    expected = torch.tensor([[*ids[0].tolist(), *solo_tokens(model, ids[0].tolist(), 12)]])
    set_compile(True)
    try:
        compiled = model.generate(ids, max_new_tokens=12, do_sample=False)
    finally:
        set_compile(None)
    assert torch.equal(compiled, expected)


@torch.no_grad()
def test_compiled_engine_steps_replay_their_graphs_as_rows_join_and_leave():
    from llmos.generation import decode_step

    model = windowed_model()
    engine = Engine(model, max_batch=4, chunk_tokens=5)
    prompts = [[5, 6, 7], [9, 8, 7, 6], [11, 12]]
    lengths = [14, 5, 3]  # rows leave at different steps: several rows, then one
    recorders = [Recorder(engine) for _ in prompts]
    set_compile(True)
    try:
        for prompt, n, recorder in zip(prompts, lengths, recorders, strict=True):
            engine.submit(prompt, SamplingParams(max_tokens=n, temperature=0), recorder)
        for _ in range(30):
            engine.step()
    finally:
        set_compile(None)
    for prompt, n, recorder in zip(prompts, lengths, recorders, strict=True):
        assert recorder.tokens == solo_tokens(model, prompt, n)
    kinds = decode_step._replays[engine.runner.pool]
    assert sorted(rows for _, _, rows in kinds) == [False, True]  # one row and several: each replayed
