"""The C++ attention over a KV cache (cached_attention): SDPA's result on every code path, shape,
mask and layout a decode step gives it, SDPA itself where it does not apply, inside a compiled
graph, and in every attention layer after use_kernels."""

import pytest
import torch

from llmos.config import ModelConfig
from llmos.generation.decode_step import compile_wanted, set_compile
from llmos.kernels import build, cached_attention, int_dot, use_cached_attention, use_kernels
from llmos.kernels.cached_attention import MAX_QUERIES, available
from llmos.model import CausalLM
from llmos.model.attention import Attention, sdpa


@pytest.fixture
def isas() -> list[int]:
    """The ops' isa indices this CPU runs; skipped (saying why) where the extension did not build."""
    if not available():  # built by the session fixture in tests/conftest.py
        pytest.skip(f"the C++ kernels are not built here: {build.unavailable_reason()}")
    return list(range(len(int_dot.supported_isas())))


def reference(q, k, v, mask, scale=None):
    """softmax(q k^T * scale) v in float64, key/value heads shared by groups of query heads."""
    group = q.shape[1] // k.shape[1]
    k, v = k.double().repeat_interleave(group, 1), v.double().repeat_interleave(group, 1)
    scores = q.double() @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5 if scale is None else scale)
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), -1) @ v


def random_mask(shape, generator) -> torch.Tensor:
    mask = torch.rand(shape, generator=generator) < 0.6
    mask[..., 0] = True  # every query sees something (a cache's masks always let one column through)
    return mask


@pytest.mark.parametrize("B,H,Hkv,T,D,S", [(1, 9, 3, 1, 64, 160), (3, 4, 4, 1, 16, 1), (2, 8, 2, 3, 128, 37),
                                           (1, 6, 2, 2, 80, 300), (2, 2, 1, 1, 256, 9)])
def test_every_code_path_gives_sdpas_result(B, H, Hkv, T, D, S, isas):
    g = torch.Generator().manual_seed(B * 1000 + S)
    q = torch.randn(B, T, H, D, generator=g).transpose(1, 2)  # as a layer makes it: a view of (B, T, H, D)
    k, v = torch.randn(B, Hkv, S, D, generator=g), torch.randn(B, Hkv, S, D, generator=g)
    for mask in (random_mask((B, 1, T, S), g), random_mask((1, 1, 1, S), g).expand(B, 1, T, S)):
        exact = reference(q, k, v, mask, scale=0.1)
        for isa in isas:
            y = torch.ops.llmos.cached_attention(q, k, v, mask, 0.1, isa)
            assert y.shape == (B, H, T, D) and y.transpose(1, 2).is_contiguous()  # the output projection's layout
            assert (y.double() - exact).abs().max() < 1e-5, isa


def test_a_paged_caches_pools_are_read_through_its_slots_or_gathered(isas):
    g = torch.Generator().manual_seed(1)
    pool_k, pool_v = torch.randn(50, 2, 32, generator=g), torch.randn(50, 2, 32, generator=g)  # (slots, Hkv, D)
    slots = torch.randint(0, 50, (2, 20), generator=g)
    k, v = pool_k[slots].transpose(1, 2), pool_v[slots].transpose(1, 2)  # (B, Hkv, S, D), not contiguous
    q = torch.randn(2, 4, 1, 32, generator=g)
    mask = random_mask((2, 1, 1, 20), g)
    exact = reference(q, k, v, mask)
    for isa in isas:
        y = torch.ops.llmos.cached_attention(q, pool_k, pool_v, mask, 32 ** -0.5, isa, slots)
        assert (y.double() - exact).abs().max() < 1e-5, isa
    assert (cached_attention(q, k, v, mask).double() - exact).abs().max() < 1e-5  # gathered views work too
    assert torch.equal(sdpa(q, pool_k, pool_v, mask, False, slots=slots), sdpa(q, k, v, mask, False))


def test_a_query_that_may_attend_to_nothing_gets_zeros(isas):
    q, k, v = torch.randn(1, 2, 1, 16), torch.randn(1, 1, 8, 16), torch.randn(1, 1, 8, 16)
    mask = torch.zeros(1, 1, 1, 8, dtype=torch.bool)
    for isa in isas:
        assert torch.equal(torch.ops.llmos.cached_attention(q, k, v, mask, 0.25, isa), torch.zeros(1, 2, 1, 16))


@pytest.mark.parametrize("case", ["softcap", "bfloat16", "long pass", "gradient", "no mask", "head size 40",
                                  "a mask per head"])
def test_where_it_does_not_apply_it_is_sdpa(case, isas):
    D = 40 if case == "head size 40" else 16
    T = MAX_QUERIES + 1 if case == "long pass" else 1
    q, k, v = torch.randn(1, 4, T, D), torch.randn(1, 2, 12, D), torch.randn(1, 2, 12, D)
    mask = None if case == "no mask" else random_mask((1, 4 if case == "a mask per head" else 1, T, 12),
                                                      torch.Generator().manual_seed(2))
    options = {"softcap": 5.0} if case == "softcap" else {}
    if case == "bfloat16":
        q, k, v = q.bfloat16(), k.bfloat16(), v.bfloat16()
    if case == "gradient":
        q.requires_grad_()
    y = cached_attention(q, k, v, mask, **options)
    assert torch.equal(y, sdpa(q, k, v, mask, False, **options))
    if case == "gradient":
        y.sum().backward()
        assert q.grad is not None


@pytest.mark.parametrize("cpp_wrapper", [False, True])
def test_the_op_stays_inside_a_fullgraph_compiled_graph(cpp_wrapper, isas, monkeypatch, tmp_path):
    import torch._inductor.config as inductor_config

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # compiled now: no graph cached against older ops

    def step(q, k, v, mask):
        return cached_attention(q.transpose(1, 2), k, v, mask).transpose(1, 2).reshape(1, 1, -1) * 2

    q, k, v = torch.randn(1, 1, 4, 16), torch.randn(1, 2, 10, 16), torch.randn(1, 2, 10, 16)
    mask = random_mask((1, 1, 1, 10), torch.Generator().manual_seed(3))
    torch._dynamo.reset()
    with torch.no_grad(), inductor_config.patch(cpp_wrapper=cpp_wrapper):
        assert torch._dynamo.explain(step)(q, k, v, mask).graph_break_count == 0
        assert torch.equal(torch.compile(step, fullgraph=True)(q, k, v, mask), step(q, k, v, mask))


def test_use_kernels_gives_it_to_every_attention_layer_and_decoding_keeps_its_tokens(isas):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=97, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=128,
                         position="rope", norm="rmsnorm", mlp="swiglu")
    model = CausalLM(config).eval()
    layers = [m for m in model.modules() if isinstance(m, Attention)]
    assert len(layers) == 2 and all(layer.cached_attention is sdpa for layer in layers)
    ids = torch.randint(0, 97, (2, 9))
    with torch.no_grad():
        set_compile(False)
        before = model.generate(ids, max_new_tokens=12, do_sample=False)
        use_kernels(model)
        assert all(layer.cached_attention.func is cached_attention for layer in layers)
        assert torch.equal(model.generate(ids, max_new_tokens=12, do_sample=False), before)
        set_compile(True)  # the op inside the compiled decode step, every buffer's length one symbol
        try:
            assert torch.equal(model.generate(ids[:1], max_new_tokens=12, do_sample=False), before[:1])
            assert compile_wanted(model) and model._llmos_decode_step  # compiled, not fallen back to eager
        finally:
            set_compile(None)
    use_cached_attention(model, enabled=False)
    assert all(layer.cached_attention is sdpa for layer in layers)
    assert use_kernels(CausalLM(config), enabled=False).transformer.blocks[0].attn.cached_attention is sdpa
