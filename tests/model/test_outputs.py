"""Model outputs behave like transformers' ModelOutput for the same input: the same field names in the
same order (None fields left out), attribute and key access, integer and slice indexing, `to_tuple()`."""

import pytest
import torch

from llmos import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.parity
TOL = 1e-4
BERT = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
            max_position_embeddings=32, type_vocab_size=2)
LLAMA = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=32, tie_word_embeddings=False, pad_token_id=0)


def _pair(tmp_path, hf_class, config_class, auto, **config):
    torch.manual_seed(0)
    hf = getattr(transformers, hf_class)(getattr(transformers, config_class)(**config)).eval()
    hf.save_pretrained(tmp_path)
    return hf, auto.from_pretrained(tmp_path)


def _same_shape_of_output(theirs, ours):
    assert list(ours.keys()) == list(theirs.keys())
    assert tuple(ours) == tuple(theirs)  # iterating gives the keys, as a dict does
    assert len(ours.to_tuple()) == len(theirs.to_tuple())
    for i, key in enumerate(theirs.keys()):
        assert ours[i] is ours[key] is getattr(ours, key)
        torch.testing.assert_close(ours[i], theirs[i], rtol=TOL, atol=TOL)
    assert [t.shape for t in ours[:2]] == [t.shape for t in theirs[:2]]
    assert ours.to_tuple()[-1] is ours[-1]


def test_bert_pretraining_output_matches_transformers(tmp_path):
    hf, ours = _pair(tmp_path, "BertForPreTraining", "BertConfig", AutoModelForPreTraining, **BERT)
    ids = torch.randint(3, 64, (2, 9), generator=torch.Generator().manual_seed(0))
    labels = ids.masked_fill(torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) > 0.3, -100)
    nsp = torch.tensor([0, 1])
    with torch.no_grad():
        for kwargs in ({}, {"labels": labels, "next_sentence_label": nsp}):
            theirs, got = hf(input_ids=ids, **kwargs), ours(ids, **kwargs)
            _same_shape_of_output(theirs, got)
    assert list(got.keys()) == ["loss", "prediction_logits", "seq_relationship_logits"]
    loss, prediction_logits = got[:2]
    assert loss.dim() == 0 and prediction_logits.shape == (2, 9, 64)
    assert got["seq_relationship_logits"].shape == (2, 2)


def test_causal_lm_output_matches_transformers(tmp_path):
    hf, ours = _pair(tmp_path, "LlamaForCausalLM", "LlamaConfig", AutoModelForCausalLM, **LLAMA)
    ids = torch.randint(3, 64, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs, got = hf(input_ids=ids, labels=ids, use_cache=False), ours(ids, labels=ids)
    _same_shape_of_output(theirs, got)
    loss, logits = got[:2]
    assert got.to_tuple() == (loss, logits) and list(got.keys()) == ["loss", "logits"]
    with torch.no_grad():
        theirs, got = hf(input_ids=ids, use_cache=False), ours(ids)
    _same_shape_of_output(theirs, got)
    assert "loss" not in got and got.loss is None
    with pytest.raises(KeyError, match="loss"):
        got["loss"]


def test_masked_lm_and_classifier_outputs_match_transformers(tmp_path):
    ids = torch.randint(3, 64, (2, 9), generator=torch.Generator().manual_seed(0))
    for hf_class, auto, extra in (("BertForMaskedLM", AutoModelForMaskedLM, {}),
                                  ("BertForSequenceClassification", AutoModelForSequenceClassification,
                                   {"num_labels": 3})):
        hf, ours = _pair(tmp_path / hf_class, hf_class, "BertConfig", auto, **BERT, **extra)
        labels = torch.tensor([0, 2]) if extra else ids
        with torch.no_grad():
            _same_shape_of_output(hf(input_ids=ids), ours(ids))
            _same_shape_of_output(hf(input_ids=ids, labels=labels), ours(ids, labels=labels))
