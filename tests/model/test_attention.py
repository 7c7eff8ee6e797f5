"""The fused SDPA attention path against plain-math attention, masks and GQA."""

import math

import pytest
import torch

from llmos.config import ModelConfig
from llmos.model.attention import Attention, AttentionContext, build_attention_mask
from llmos.model.cache import KVCache


def reference_attention(attn: Attention, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_k)) V written out, with key/value heads repeated for GQA."""
    B, T, _ = x.shape
    H, Hkv, D = attn.n_heads, attn.n_kv_heads, attn.head_dim
    q, k, v = attn.qkv(x).split([H * D, Hkv * D, Hkv * D], dim=-1)
    q = q.view(B, T, H, D).transpose(1, 2)
    k = k.view(B, T, Hkv, D).transpose(1, 2).repeat_interleave(H // Hkv, dim=1)
    v = v.view(B, T, Hkv, D).transpose(1, 2).repeat_interleave(H // Hkv, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(D)
    scores = scores.masked_fill(~allowed, float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v
    return attn.out(y.transpose(1, 2).reshape(B, T, H * D))


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("causal", [True, False])
def test_sdpa_attention_matches_reference_math(n_kv_heads, causal):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=16, d_model=32, n_layers=1, n_heads=4, n_kv_heads=n_kv_heads,
                         max_seq_len=16, causal=causal)
    attn = Attention(config, 0).eval()
    x = torch.randn(2, 7, 32)
    mask, is_causal = build_attention_mask(None, 2, 0, 7, causal, None, x.device)
    allowed = torch.ones(7, 7, dtype=torch.bool)
    if causal:
        allowed = allowed.tril()
    torch.testing.assert_close(attn(x, AttentionContext(None, mask, is_causal)), reference_attention(attn, x, allowed))


def test_padding_mask_hides_padded_keys():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=16, d_model=32, n_layers=1, n_heads=4, max_seq_len=16)
    attn = Attention(config, 0).eval()
    x = torch.randn(2, 6, 32)
    padding = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    mask, is_causal = build_attention_mask(padding, 2, 0, 6, True, None, x.device)
    allowed = torch.ones(6, 6, dtype=torch.bool).tril() & padding.bool()[:, None, None, :]
    allowed = allowed | ~allowed.any(-1, keepdim=True)  # fully padded query rows see everything
    out = attn(x, AttentionContext(None, mask, is_causal))
    torch.testing.assert_close(out, reference_attention(attn, x, allowed))
    assert torch.isfinite(out).all()


def test_sliding_window_limits_how_far_back_a_query_sees():
    mask, _ = build_attention_mask(None, 1, 0, 6, True, 3, torch.device("cpu"))
    expected = torch.tensor([[1 if 0 <= i - j < 3 else 0 for j in range(6)] for i in range(6)]).bool()
    assert torch.equal(mask[0, 0], expected)


def test_cache_update_rejects_overflow():
    config = ModelConfig(vocab_size=16, d_model=32, n_layers=1, n_heads=4, max_seq_len=16)
    cache = KVCache(config, batch_size=1, max_len=4)
    with pytest.raises(ValueError, match="max_len=4"):
        cache.positions(5, torch.device("cpu"))


@pytest.mark.parametrize("is_causal", [True, False])
def test_capped_scores_match_reference_math(is_causal):
    """cap * tanh(q.k * scale / cap) before the softmax (Gemma 2's attention cap), with GQA and a query scale."""
    from llmos.model.attention import sdpa

    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 8) * 3, torch.randn(2, 2, 5, 8) * 3, torch.randn(2, 2, 5, 8)
    kk, vv = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
    scores = 2.0 * torch.tanh(q @ kk.transpose(-1, -2) * 0.3 / 2.0)
    if is_causal:
        scores = scores.masked_fill(~torch.ones(5, 5, dtype=torch.bool).tril(), float("-inf"))
    expected = torch.softmax(scores, dim=-1) @ vv
    got = sdpa(q, k, v, None, is_causal, scale=0.3, softcap=2.0)
    torch.testing.assert_close(got, expected)
    assert (got - sdpa(q, k, v, None, is_causal, scale=0.3)).abs().max() > 1e-2  # the cap changes the result
