"""Parity: tiny random Hugging Face models saved with save_pretrained load into LLMOS with identical logits."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from llmos import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

pytestmark = pytest.mark.parity
TOL = 1e-4
VOCAB = 96


def _inputs(batch: int = 2, length: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (batch, length), generator=g)
    return ids


def _left_padded(ids: torch.Tensor, pad: int = 0):
    ids = ids.clone()
    mask = torch.ones_like(ids)
    ids[1, :3] = pad
    mask[1, :3] = 0
    return ids, mask


def _save(hf_model, tmp_path):
    torch.manual_seed(0)
    hf_model.eval()
    hf_model.save_pretrained(tmp_path)
    return hf_model


def _llama_kwargs(**over):
    base = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                tie_word_embeddings=False, pad_token_id=0)
    return {**base, **over}


def _hf(cls_name: str, config_name: str, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    config = getattr(transformers, config_name)(**kwargs)
    model = getattr(transformers, cls_name)(config)
    # random non-trivial values for biases and norms, which HF initialises to 0 / 1
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def _check_causal(hf_model, tmp_path, ours_cls=AutoModelForCausalLM):
    _save(hf_model, tmp_path)
    ours = ours_cls.from_pretrained(tmp_path)
    ids = _inputs()
    with torch.no_grad():
        expected = hf_model(input_ids=ids).logits
        got = ours(ids).logits
        assert (got - expected).abs().max().item() <= TOL
        padded, mask = _left_padded(ids)
        expected = hf_model(input_ids=padded, attention_mask=mask).logits
        got = ours(padded, attention_mask=mask).logits
    real = mask.bool()
    if expected.dim() == 3:
        expected, got = expected[real], got[real]
    assert (got - expected).abs().max().item() <= TOL
    return ours


CAUSAL_CASES = {
    "gpt2_tied": ("GPT2LMHeadModel", "GPT2Config",
                  dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=1, eos_token_id=2)),
    "llama_gqa_untied": ("LlamaForCausalLM", "LlamaConfig", _llama_kwargs()),
    "llama_tied": ("LlamaForCausalLM", "LlamaConfig", _llama_kwargs(tie_word_embeddings=True)),
    "llama3_rope_scaling": ("LlamaForCausalLM", "LlamaConfig", _llama_kwargs(
        rope_theta=500000.0, attention_bias=True, mlp_bias=True, head_dim=16,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 16})),
    "qwen2_biases_gqa": ("Qwen2ForCausalLM", "Qwen2Config", _llama_kwargs()),
    "mistral_sliding_window": ("MistralForCausalLM", "MistralConfig", _llama_kwargs(sliding_window=4)),
}


@pytest.mark.parametrize("case", sorted(CAUSAL_CASES))
def test_hf_causal_lm_loads_with_identical_logits(case, tmp_path):
    cls_name, config_name, kwargs = CAUSAL_CASES[case]
    ours = _check_causal(_hf(cls_name, config_name, **kwargs), tmp_path)
    assert not ours.training
    if "tied" in case:
        assert (ours.lm_head.weight is ours.transformer.embed.tokens.weight) == case.endswith("_tied")


def test_llama3_rope_scaling_is_read_from_the_hf_config(tmp_path):
    cls_name, config_name, kwargs = CAUSAL_CASES["llama3_rope_scaling"]
    ours = _check_causal(_hf(cls_name, config_name, **kwargs), tmp_path)
    assert ours.config.rope_scaling["rope_type"] == "llama3"
    assert ours.config.rope_theta == 500000.0
    assert ours.config.qkv_bias and ours.config.attn_out_bias and ours.config.mlp_bias


def test_mistral_sliding_window_is_read_from_the_hf_config(tmp_path):
    cls_name, config_name, kwargs = CAUSAL_CASES["mistral_sliding_window"]
    hf_model = _hf(cls_name, config_name, **kwargs)
    hf_model.save_pretrained(tmp_path)
    assert AutoModelForCausalLM.from_pretrained(tmp_path).config.sliding_window == 4


def _bert_kwargs(**over):
    return {**dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=48, max_position_embeddings=64, type_vocab_size=2), **over}


def _bert_inputs():
    ids = _inputs()
    types = torch.zeros_like(ids)
    types[:, 4:] = 1
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0
    return ids, types, mask


def test_bert_masked_lm_loads_with_identical_logits(tmp_path):
    hf_model = _save(_hf("BertForMaskedLM", "BertConfig", **_bert_kwargs()), tmp_path)
    ours = AutoModelForMaskedLM.from_pretrained(tmp_path)
    ids, types, mask = _bert_inputs()
    with torch.no_grad():
        expected = hf_model(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask, token_type_ids=types).logits
    assert (got - expected)[mask.bool()].abs().max().item() <= TOL


def test_bert_pretraining_loads_with_identical_mlm_and_nsp_logits(tmp_path):
    hf_model = _save(_hf("BertForPreTraining", "BertConfig", **_bert_kwargs()), tmp_path)
    ours = AutoModelForPreTraining.from_pretrained(tmp_path)
    ids, types, mask = _bert_inputs()
    with torch.no_grad():
        expected = hf_model(input_ids=ids, token_type_ids=types, attention_mask=mask)
        got = ours(ids, attention_mask=mask, token_type_ids=types)
    assert (got.prediction_logits - expected.prediction_logits)[mask.bool()].abs().max().item() <= TOL
    assert (got.seq_relationship_logits - expected.seq_relationship_logits).abs().max().item() <= TOL


def test_bert_sequence_classification_loads_with_identical_logits(tmp_path):
    hf_model = _save(_hf("BertForSequenceClassification", "BertConfig", **_bert_kwargs(num_labels=3)), tmp_path)
    ours = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    ids, types, mask = _bert_inputs()
    with torch.no_grad():
        expected = hf_model(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask, token_type_ids=types).logits
    assert got.shape == (2, 3)
    assert (got - expected).abs().max().item() <= TOL


@pytest.mark.parametrize("cls_name,config_name,kwargs", [
    ("LlamaForSequenceClassification", "LlamaConfig", _llama_kwargs(num_labels=3)),
    ("GPT2ForSequenceClassification", "GPT2Config",
     dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, num_labels=3, pad_token_id=0, bos_token_id=1, eos_token_id=2)),
])
def test_decoder_sequence_classification_loads_with_identical_logits(cls_name, config_name, kwargs, tmp_path):
    hf_model = _save(_hf(cls_name, config_name, **kwargs), tmp_path)
    ours = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    ids = _inputs()
    ids[1, -2:] = 0  # right padding with pad_token_id
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = hf_model(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask).logits
    assert (got - expected).abs().max().item() <= TOL


def test_bert_base_model_loads_its_trunk_with_identical_hidden_states(tmp_path, caplog):
    hf_model = _save(_hf("BertModel", "BertConfig", **_bert_kwargs()), tmp_path)
    with caplog.at_level("WARNING", logger="llmos.checkpoint"):
        ours = AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert "mlm.dense.weight" in caplog.text  # the MLM head is not in a BertModel: fresh, with a warning
    ids, types, mask = _bert_inputs()
    with torch.no_grad():
        expected = hf_model(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        got = ours.transformer(ids, attention_mask=mask, token_type_ids=types)  # the trunk's last states
    assert (got - expected)[mask.bool()].abs().max().item() <= TOL


@pytest.mark.parametrize("family, saved, loaded_as, ours_cls", [
    ("bert", "BertForMaskedLM", "BertForSequenceClassification", AutoModelForSequenceClassification),
    ("bert", "BertForSequenceClassification", "BertForMaskedLM", AutoModelForMaskedLM),
    ("gpt2", "GPT2LMHeadModel", "GPT2ForSequenceClassification", AutoModelForSequenceClassification),
    ("gpt2", "GPT2ForSequenceClassification", "GPT2LMHeadModel", AutoModelForCausalLM),
])
def test_output_loading_info_reports_the_keys_transformers_reports(family, saved, loaded_as, ours_cls, tmp_path):
    from llmos.checkpoint.hf_weights import hf_to_ours

    def our_names(hf_keys) -> list[str]:
        state, unmapped = hf_to_ours(sorted(hf_keys), family, lambda name: torch.zeros(2, 2))
        assert unmapped == []
        return sorted(state)

    kwargs = _bert_kwargs() if family == "bert" else dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4,
                                                          n_positions=64, pad_token_id=0)
    _save(_hf(saved, "BertConfig" if family == "bert" else "GPT2Config", **kwargs), tmp_path)
    _, theirs = getattr(transformers, loaded_as).from_pretrained(tmp_path, output_loading_info=True)
    _, ours = ours_cls.from_pretrained(tmp_path, output_loading_info=True)
    assert sorted(ours["missing_keys"]) == our_names(theirs["missing_keys"])
    assert sorted(ours["unexpected_keys"]) == our_names(theirs["unexpected_keys"])
    assert ours["missing_keys"] or ours["unexpected_keys"]  # each case has something to report
    assert ours["mismatched_keys"] == [] == list(theirs["mismatched_keys"])
