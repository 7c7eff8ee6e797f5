"""Parity: tiny random Qwen3, Gemma 3 and Phi-3 checkpoints saved by transformers load into the one LLMOS
Transformer with the same logits (1e-4), the same greedy continuation, and export back to the same model."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from llmos import AutoModelForCausalLM  # noqa: E402
from llmos.checkpoint.hf_export import export_hf  # noqa: E402

pytestmark = pytest.mark.parity
TOL = 1e-4
VOCAB = 96
COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=64, pad_token_id=0)
PHI3_LONGROPE = {"rope_type": "longrope", "short_factor": [1.0, 1.3, 1.7, 2.0, 2.5, 3.0],
                 "long_factor": [2.0, 3.0, 4.5, 6.0, 8.0, 9.5]}

CASES = {
    "qwen3_tied": ("Qwen3ForCausalLM", "Qwen3Config", dict(COMMON, num_hidden_layers=2, head_dim=16,
                                                           tie_word_embeddings=True)),
    # Gemma 3: local layers (window 4, base 10k) around a global one (base 1M, linear scaling as the 4B's)
    "gemma3_windows": ("Gemma3ForCausalLM", "Gemma3TextConfig", dict(
        COMMON, num_hidden_layers=4, head_dim=16, query_pre_attn_scalar=12, sliding_window=4,
        layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1_000_000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}})),
    # a cap on the logits (transformers' Gemma 3 applies that one; its attn_logit_softcapping, never)
    "gemma3_final_softcap": ("Gemma3ForCausalLM", "Gemma3TextConfig", dict(
        COMMON, num_hidden_layers=2, head_dim=16, sliding_window=3, layer_types=["sliding_attention", "full_attention"],
        final_logit_softcapping=3.0, attn_logit_softcapping=2.0, attn_implementation="eager")),
    # Phi-3.5 / Phi-4-mini: LongRoPE short/long factors, 3/4 of each head rotating, a window
    "phi3_longrope_partial": ("Phi3ForCausalLM", "Phi3Config", dict(
        COMMON, hidden_size=64, num_hidden_layers=2, original_max_position_embeddings=16, partial_rotary_factor=0.75,
        rope_scaling=PHI3_LONGROPE, sliding_window=6, bos_token_id=1, eos_token_id=2)),
    "phi3_mini_4k": ("Phi3ForCausalLM", "Phi3Config", dict(COMMON, num_hidden_layers=2, bos_token_id=1,
                                                           eos_token_id=2)),
}


def _hf(case: str):
    cls_name, config_name, kwargs = CASES[case]
    kwargs = dict(kwargs)
    implementation = kwargs.pop("attn_implementation", None)
    torch.manual_seed(0)
    config = getattr(transformers, config_name)(**kwargs)
    if implementation:
        config._attn_implementation = implementation
    model = getattr(transformers, cls_name)(config)
    with torch.no_grad():  # non-trivial norms (Gemma's start at 0, the others' at 1)
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


@pytest.fixture(params=sorted(CASES))
def pair(request, tmp_path):
    hf_model = _hf(request.param)
    hf_model.save_pretrained(tmp_path)
    return request.param, hf_model, AutoModelForCausalLM.from_pretrained(tmp_path), tmp_path


def test_logits_match_transformers_with_and_without_left_padding(pair):
    case, theirs, ours, _ = pair
    ids = torch.randint(3, VOCAB, (2, 11), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    with torch.no_grad():
        expected = theirs(input_ids=ids).logits
        assert expected.abs().max() > 0.1
        torch.testing.assert_close(ours(ids).logits, expected, rtol=0, atol=TOL)
        expected = theirs(input_ids=ids, attention_mask=mask).logits[mask.bool()]
        torch.testing.assert_close(ours(ids, attention_mask=mask).logits[mask.bool()], expected, rtol=0, atol=TOL)


def test_greedy_continuation_matches_transformers_past_the_window_and_the_original_length(pair):
    """20 new tokens after 5: past every window here and past Phi-3's original length (16), where LongRoPE
    switches to its long factors."""
    case, theirs, ours, _ = pair
    ids = torch.randint(3, VOCAB, (1, 5), generator=torch.Generator().manual_seed(1))
    expected = theirs.generate(ids, max_new_tokens=20, min_new_tokens=20, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(ids, max_new_tokens=20, min_new_tokens=20, do_sample=False), expected)


def test_export_to_hf_gives_back_a_model_with_the_same_logits(pair, tmp_path):
    case, theirs, ours, _ = pair
    out = export_hf(ours, tmp_path / "exported")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    if CASES[case][2].get("attn_implementation"):
        reloaded.config._attn_implementation = "eager"
    assert type(reloaded) is type(theirs)
    ids = torch.randint(3, VOCAB, (1, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, theirs(ids).logits, rtol=0, atol=TOL)


def test_gemma3_reads_its_window_pattern_bases_and_query_scale(tmp_path):
    _hf("gemma3_windows").save_pretrained(tmp_path)
    config = AutoModelForCausalLM.from_pretrained(tmp_path).config
    assert (config.sliding_window, config.sliding_window_pattern) == (4, 3)
    assert [config.layer_window(i) for i in range(4)] == [4, 4, None, 4]
    assert (config.rope_theta, config.local_rope_theta) == (1_000_000.0, 10_000.0)
    assert config.attn_scale == pytest.approx(12 ** -0.5)
    assert config.norm_weight_offset == 1.0 and config.sandwich_norm and config.scale_embeddings


def test_a_gemma3_layer_pattern_that_is_not_every_nth_is_refused(tmp_path):
    from llmos.errors import LLMOSError

    cls_name, config_name, kwargs = CASES["gemma3_windows"]
    kwargs = dict(kwargs, layer_types=["full_attention", "sliding_attention", "sliding_attention",
                                       "full_attention"])
    getattr(transformers, cls_name)(getattr(transformers, config_name)(**kwargs)).save_pretrained(tmp_path)
    with pytest.raises(LLMOSError, match="not 'every Nth layer global'"):
        AutoModelForCausalLM.from_pretrained(tmp_path)


def test_the_text_model_of_a_multimodal_gemma3_checkpoint_loads_with_the_same_logits(tmp_path):
    """Gemma 3 4B and up are saved as Gemma3ForConditionalGeneration: the text part loads, the image side
    (vision tower, projector) is left out."""
    text = dict(CASES["gemma3_windows"][2])
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                  patch_size=14)
    torch.manual_seed(0)
    config = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                                       image_token_index=95, boi_token_index=93, eoi_token_index=94)
    theirs = transformers.Gemma3ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.3)
    theirs.save_pretrained(tmp_path)
    ours = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert ours.config.family == "gemma3_text" and ours.config.sliding_window_pattern == 3
    ids = torch.randint(3, 90, (1, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, theirs(input_ids=ids).logits, rtol=0, atol=TOL)
