"""The trunk and heads: positions, norms, KV cache equivalence, padding, losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from llmos.config import ConfigError, ModelConfig
from llmos.model import (
    CausalLM,
    ContextLengthError,
    KVCache,
    MaskedLM,
    PreTrainingModel,
    SequenceClassifier,
)
from llmos.model.attention import AttentionContext
from llmos.model.positions import rope_inverse_frequencies, sinusoidal_table

SHAPES = {
    "gpt2-like": dict(position="learned", mlp="gelu_tanh"),
    "llama-like": dict(position="rope", norm="rmsnorm", mlp="swiglu", n_kv_heads=2, qkv_bias=False,
                       mlp_bias=False, attn_out_bias=False, tie_embeddings=False),
    "textbook": dict(position="sinusoidal", norm_placement="post", final_norm=False, mlp="gelu"),
    "mistral-like": dict(position="rope", norm="rmsnorm", mlp="swiglu", n_kv_heads=1, sliding_window=5),
}


def tiny(**overrides) -> ModelConfig:
    base = dict(vocab_size=97, d_model=32, n_layers=2, n_heads=4, max_seq_len=32)
    return ModelConfig(**{**base, **overrides})


def test_sinusoidal_table_follows_the_textbook_formula():
    table = sinusoidal_table(50, 16)
    for pos in (0, 7, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_llama3_rope_scaling_keeps_high_and_divides_low_frequencies():
    plain = rope_inverse_frequencies(tiny(position="rope", head_dim=64, n_heads=4))
    scaled = rope_inverse_frequencies(tiny(
        position="rope", head_dim=64, n_heads=4,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64}))
    assert scaled[0] == plain[0]  # shortest wavelength untouched
    assert scaled[-1] == pytest.approx(plain[-1] / 8.0)  # longest wavelength divided by factor


@pytest.mark.parametrize("shape", SHAPES)
def test_kv_cached_decoding_equals_one_full_forward(shape):
    torch.manual_seed(0)
    model = CausalLM(tiny(**SHAPES[shape])).eval()
    ids = torch.randint(0, 97, (2, 12))
    full = model(ids).logits
    cache = KVCache(model.config, batch_size=2)
    steps = [model(ids[:, :8], cache=cache).logits]
    for t in range(8, 12):
        steps.append(model(ids[:, t : t + 1], cache=cache).logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", ["gpt2-like", "llama-like"])
def test_left_padding_gives_the_unpadded_logits(shape):
    torch.manual_seed(0)
    model = CausalLM(tiny(**SHAPES[shape])).eval()
    ids = torch.randint(1, 97, (1, 6))
    alone = model(ids).logits
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], dim=1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(padded, attention_mask=mask, position_ids=positions).logits[:, 3:]
    torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)


def test_post_norm_block_normalizes_after_the_residual():
    torch.manual_seed(0)
    model = CausalLM(tiny(**SHAPES["textbook"])).eval()
    block = model.transformer.blocks[0]
    x = torch.randn(1, 5, 32)
    h = block.attn_norm(x + block.attn(x, AttentionContext(None, None, True)))
    expected = block.mlp_norm(h + block.mlp(h))
    torch.testing.assert_close(block(x, AttentionContext(None, None, True)), expected)


def test_causal_lm_loss_is_shifted_cross_entropy_and_ignores_minus_100():
    torch.manual_seed(0)
    model = CausalLM(tiny()).eval()
    ids = torch.randint(0, 97, (2, 9))
    labels = ids.clone()
    labels[0, 4] = -100
    out = model(ids, labels=labels)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, 97), labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)


def test_logits_to_keep_runs_the_head_on_the_last_positions_only():
    model = CausalLM(tiny()).eval()
    ids = torch.randint(0, 97, (2, 9))
    torch.testing.assert_close(model(ids, logits_to_keep=1).logits, model(ids).logits[:, -1:])


def test_tied_embeddings_share_one_tensor():
    model = CausalLM(tiny())
    assert model.lm_head.weight is model.transformer.embed.tokens.weight
    untied = CausalLM(tiny(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.transformer.embed.tokens.weight


def test_input_longer_than_the_context_is_refused():
    model = CausalLM(tiny())
    with pytest.raises(ContextLengthError, match="max_seq_len=32"):
        model(torch.zeros(1, 33, dtype=torch.long))


def encoder(**overrides) -> ModelConfig:
    return tiny(causal=False, norm_placement="post", embedding_norm=True, final_norm=False, mlp="gelu",
                type_vocab_size=2, lm_head_bias=True, mlm_transform=True, pooler=True, **overrides)


def test_encoder_attention_is_bidirectional():
    torch.manual_seed(0)
    model = MaskedLM(encoder()).eval()
    ids = torch.randint(0, 97, (1, 6))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 97
    assert not torch.allclose(model(ids).logits[0, 0], model(changed).logits[0, 0])


def test_pretraining_loss_is_masked_lm_plus_next_sentence():
    torch.manual_seed(0)
    model = PreTrainingModel(encoder()).eval()
    ids = torch.randint(0, 97, (2, 8))
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    nsp = torch.tensor([0, 1])
    out = model(ids, token_type_ids=torch.zeros_like(ids), labels=labels, next_sentence_label=nsp)
    mlm = F.cross_entropy(out.prediction_logits.reshape(-1, 97), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, mlm + F.cross_entropy(out.seq_relationship_logits, nsp))


def test_masked_only_runs_the_mlm_head_on_the_labelled_positions_with_the_same_loss():
    torch.manual_seed(0)
    model = PreTrainingModel(encoder()).eval()
    ids = torch.randint(0, 97, (2, 8))
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 5], labels[1, 6] = ids[0, 2], ids[1, 5], ids[1, 6]
    nsp = torch.tensor([0, 1])
    full = model(ids, labels=labels, next_sentence_label=nsp)
    only = model(ids, labels=labels, next_sentence_label=nsp, masked_only=True)
    assert only.prediction_logits.shape == (3, 97)
    torch.testing.assert_close(only.prediction_logits, full.prediction_logits[labels != -100])
    torch.testing.assert_close(only.loss, full.loss)


def test_decoder_classifier_reads_the_last_real_token():
    torch.manual_seed(0)
    model = SequenceClassifier(tiny(num_labels=3, pad_token_id=0)).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0]])
    h = model.transformer(ids)
    torch.testing.assert_close(model(ids).logits, model.classifier(h[:, 2]))


@pytest.mark.parametrize(
    "field,value,match",
    [("position", "alibi", "position='alibi'"), ("n_kv_heads", 3, "n_kv_heads=3"),
     ("mlp", "relu", "mlp='relu'"), ("vocab_size", 0, "vocab_size=0")],
)
def test_bad_config_values_name_the_field_and_the_valid_choices(field, value, match):
    with pytest.raises(ConfigError, match=match):
        tiny(**{field: value})


def test_config_round_trips_through_a_dict_and_rejects_unknown_fields():
    config = tiny(**SHAPES["llama-like"])
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="n_layer"):
        ModelConfig.from_dict({**config.to_dict(), "n_layer": 3})


@pytest.mark.parametrize("shape", list(SHAPES))
def test_default_positions_equal_explicit_per_row_positions(shape):
    """Without position_ids the trunk uses one (1, T) row broadcast over the batch; outputs and
    gradients equal those of explicit (B, T) position ids."""
    torch.manual_seed(0)
    model = CausalLM(tiny(**SHAPES[shape]))
    ids = torch.randint(0, 97, (3, 9))
    explicit = torch.arange(9).expand(3, 9)
    default_loss = model(ids, labels=ids).loss
    default_loss.backward()
    default_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    explicit_loss = model(ids, position_ids=explicit, labels=ids).loss
    explicit_loss.backward()
    torch.testing.assert_close(default_loss, explicit_loss)
    for mine, reference in zip(default_grads, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(mine, reference)
