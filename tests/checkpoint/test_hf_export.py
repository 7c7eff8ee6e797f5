"""Export: LLMOS models written with `llmos convert --to hf` load in transformers with identical logits."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from typer.testing import CliRunner

from llmos import AutoModelForCausalLM
from llmos.checkpoint import export_hf
from llmos.cli.main import app, main
from llmos.config import ModelConfig
from llmos.errors import LLMOSError
from llmos.model import CausalLM, MaskedLM, PreTrainingModel, SequenceClassifier

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.parity
TOL = 1e-4


def _randomize_vectors(model):
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def _convert(source, out):
    result = CliRunner().invoke(app, ["convert", str(source), str(out), "--to", "hf"])
    assert result.exit_code == 0, result.output
    return out


def _ids_and_mask():
    ids = torch.randint(1, 80, (2, 8), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    return ids, mask


EXPORT_CASES = {
    "llama_gqa": (CausalLM, lambda t: t.llama(), "AutoModelForCausalLM", "LlamaForCausalLM"),
    "llama_tied_biases": (CausalLM, lambda t: t.llama(tie_embeddings=True, qkv_bias=True, attn_out_bias=True,
                                                       mlp_bias=True), "AutoModelForCausalLM", "LlamaForCausalLM"),
    "llama3_scaling": (CausalLM, lambda t: t.llama(rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16}), "AutoModelForCausalLM", "LlamaForCausalLM"),
    "qwen2": (CausalLM, lambda t: t.llama(qkv_bias=True, family="qwen2"), "AutoModelForCausalLM", "Qwen2ForCausalLM"),
    "mistral": (CausalLM, lambda t: t.llama(sliding_window=4, family="mistral"), "AutoModelForCausalLM",
                "MistralForCausalLM"),
    "gpt2": (CausalLM, lambda t: t.gpt2(), "AutoModelForCausalLM", "GPT2LMHeadModel"),
    "bert_mlm": (MaskedLM, lambda t: t.bert(), "AutoModelForMaskedLM", "BertForMaskedLM"),
    "bert_classifier": (SequenceClassifier, lambda t: t.bert(num_labels=3),
                        "AutoModelForSequenceClassification", "BertForSequenceClassification"),
    "llama_classifier": (SequenceClassifier, lambda t: t.llama(pad_token_id=0, classifier_bias=False),
                         "AutoModelForSequenceClassification", "LlamaForSequenceClassification"),
}


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_exported_model_loads_in_transformers_with_identical_logits(case, tmp_path, tiny):
    head, make_config, auto_name, hf_class = EXPORT_CASES[case]
    torch.manual_seed(0)
    ours = _randomize_vectors(head(make_config(tiny)))
    ours.save_pretrained(tmp_path / "ours")
    _convert(tmp_path / "ours", tmp_path / "hf")
    hf_model = getattr(transformers, auto_name).from_pretrained(tmp_path / "hf").eval()
    assert type(hf_model).__name__ == hf_class
    ids, mask = _ids_and_mask()
    if head is SequenceClassifier and ours.config.causal:
        ids[1, -3:] = 0  # right padding with pad_token_id, as HF finds the last real token by it
        mask = (ids != 0).long()
    with torch.no_grad():
        expected = hf_model(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask).logits
    real = mask.bool() if expected.dim() == 3 else slice(None)
    assert (got[real] - expected[real]).abs().max().item() <= TOL


def test_exported_bert_pretraining_gives_identical_nsp_logits(tmp_path, tiny):
    torch.manual_seed(0)
    ours = _randomize_vectors(PreTrainingModel(tiny.bert()))
    export_hf(ours, tmp_path / "hf")
    hf_model = transformers.BertForPreTraining.from_pretrained(tmp_path / "hf").eval()
    ids, mask = _ids_and_mask()
    with torch.no_grad():
        expected = hf_model(input_ids=ids, attention_mask=mask)
        got = ours(ids, attention_mask=mask)
    assert (got.seq_relationship_logits - expected.seq_relationship_logits).abs().max().item() <= TOL
    assert (got.prediction_logits - expected.prediction_logits)[mask.bool()].abs().max().item() <= TOL


def test_export_copies_tokenizer_files_and_generation_config(tmp_path, tiny):
    from tokenizers import Tokenizer, models

    CausalLM(tiny.gpt2()).save_pretrained(tmp_path / "ours", generation_config={"max_new_tokens": 5})
    Tokenizer(models.WordLevel({"a": 0, "b": 1}, unk_token="a")).save(str(tmp_path / "ours" / "tokenizer.json"))
    _convert(tmp_path / "ours", tmp_path / "hf")
    assert (tmp_path / "hf" / "tokenizer.json").read_text() == (tmp_path / "ours" / "tokenizer.json").read_text()
    assert json.loads((tmp_path / "hf" / "generation_config.json").read_text()) == {"max_new_tokens": 5}


def test_hf_checkpoint_converts_to_llmos_and_back_with_identical_logits(tmp_path, tiny):
    torch.manual_seed(0)
    ours = _randomize_vectors(CausalLM(tiny.llama()))
    export_hf(ours, tmp_path / "hf")
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "hf"), str(tmp_path / "back"), "--to", "llmos"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "back" / "config.json").read_text())["model_type"] == "llmos"
    ids, _ = _ids_and_mask()
    with torch.no_grad():
        assert torch.equal(AutoModelForCausalLM.from_pretrained(tmp_path / "back")(ids).logits, ours(ids).logits)


@pytest.mark.parametrize("make_config,field", [
    (lambda t: ModelConfig.from_preset("textbook", vocab_size=80, d_model=32, n_layers=1, n_heads=4), "position='sinusoidal'"),
    (lambda t: t.llama(norm_placement="post"), "norm_placement='post'"),
    (lambda t: t.gpt2(n_kv_heads=2), "n_kv_heads=2"),
    (lambda t: t.llama(lm_head_bias=True), "lm_head_bias=True"),
])
def test_config_without_hf_equivalent_is_refused_naming_the_field(make_config, field, tmp_path, tiny):
    with pytest.raises(LLMOSError, match=f"{field}.*no Hugging Face equivalent"):
        export_hf(CausalLM(make_config(tiny)), tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_convert_cli_prints_one_error_line_and_exits_2(tmp_path, monkeypatch, capsys):
    config = ModelConfig.from_preset("textbook", vocab_size=80, d_model=32, n_layers=1, n_heads=4)
    CausalLM(config).save_pretrained(tmp_path / "ours")
    monkeypatch.setattr(sys, "argv", ["llmos", "convert", str(tmp_path / "ours"), str(tmp_path / "hf"), "--to", "hf"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.strip().count("\n") == 0
    assert stderr.startswith("error: position='sinusoidal' has no Hugging Face equivalent")
    assert not (tmp_path / "hf").exists()


def test_sharded_export_loads_in_transformers(tmp_path, tiny):
    torch.manual_seed(0)
    ours = _randomize_vectors(CausalLM(tiny.llama()))
    ours.save_pretrained(tmp_path / "ours")
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "ours"), str(tmp_path / "hf"),
                                      "--to", "hf", "--max-shard-size", "20KB"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "hf").glob("model-*-of-*.safetensors"))) > 2
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids, _ = _ids_and_mask()
    with torch.no_grad():
        assert (hf_model(input_ids=ids).logits - ours(ids).logits).abs().max().item() <= TOL
