"""Saving and loading LLMOS checkpoint directories: round trips, sharding, atomicity, dtype, heads."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from llmos import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)
from llmos.checkpoint import load_pretrained, safetensors_io
from llmos.model import CausalLM, MaskedLM, PreTrainingModel, SequenceClassifier


def _same_logits(a, b, ids, **kw) -> bool:
    with torch.no_grad():
        return torch.equal(a(ids, **kw).logits, b(ids, **kw).logits)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_causal_lm_round_trip_gives_identical_logits(family, tmp_path, ids, tiny):
    torch.manual_seed(0)
    model = CausalLM(getattr(tiny, family)()).eval()
    model.save_pretrained(tmp_path / "ckpt")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt")
    assert isinstance(loaded, CausalLM) and not loaded.training
    assert loaded.config == model.config
    assert _same_logits(model, loaded, ids)


def test_checkpoint_directory_holds_config_head_weights_and_generation_config(tmp_path, tiny):
    model = CausalLM(tiny.gpt2(bos_token_id=1, eos_token_id=2))
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["model_type"] == "llmos" and config["head"] == "CausalLM"
    assert config["d_model"] == 32
    generation = json.loads((tmp_path / "ckpt" / "generation_config.json").read_text())
    assert generation == {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": None}
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "config.json", "generation_config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_tied_weights_are_saved_once_and_tied_again_on_load(tmp_path, tiny):
    from safetensors import safe_open

    model = CausalLM(tiny.gpt2())
    model.save_pretrained(tmp_path / "ckpt")
    with safe_open(str(tmp_path / "ckpt" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "transformer.embed.tokens.weight" in keys and "lm_head.weight" not in keys
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt")
    assert loaded.lm_head.weight is loaded.transformer.embed.tokens.weight


def test_generation_config_object_with_to_dict_is_written(tmp_path, tiny):
    class Generation:
        def to_dict(self):
            return {"max_new_tokens": 7, "temperature": 0.5}

    CausalLM(tiny.gpt2()).save_pretrained(tmp_path / "ckpt", generation_config=Generation())
    data = json.loads((tmp_path / "ckpt" / "generation_config.json").read_text())
    assert data == {"max_new_tokens": 7, "temperature": 0.5}


def test_sharded_save_writes_index_and_loads_back(tmp_path, ids, tiny):
    model = CausalLM(tiny.llama()).eval()
    model.save_pretrained(tmp_path / "ckpt", max_shard_bytes=20_000)
    files = sorted(p.name for p in (tmp_path / "ckpt").glob("model*.safetensors"))
    assert len(files) > 2 and files[0] == f"model-00001-of-{len(files):05d}.safetensors"
    index = json.loads((tmp_path / "ckpt" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(files)
    assert not (tmp_path / "ckpt" / "model.safetensors").exists()
    assert _same_logits(model, AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt"), ids)


def test_failed_save_leaves_previous_checkpoint_intact_and_no_partial_directory(tmp_path, monkeypatch, ids, tiny):
    first = CausalLM(tiny.gpt2()).eval()
    first.save_pretrained(tmp_path / "ckpt")
    before = sorted(p.name for p in tmp_path.iterdir())

    def failing_save_file(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors_io, "save_file", failing_save_file)
    torch.manual_seed(5)
    with pytest.raises(OSError, match="disk full"):
        CausalLM(tiny.gpt2()).save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert _same_logits(first, AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt"), ids)


def test_save_replaces_an_existing_checkpoint(tmp_path, ids, tiny):
    CausalLM(tiny.gpt2()).save_pretrained(tmp_path / "ckpt")
    torch.manual_seed(3)
    second = CausalLM(tiny.gpt2()).eval()
    second.save_pretrained(tmp_path / "ckpt")
    assert _same_logits(second, AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt"), ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@pytest.mark.parametrize("dtype,expected", [
    ("bfloat16", torch.bfloat16), (torch.float16, torch.float16), ("float32", torch.float32),
    (None, torch.float32),
])
def test_dtype_option_sets_parameter_dtype(dtype, expected, tmp_path, ids, tiny):
    CausalLM(tiny.llama()).save_pretrained(tmp_path / "ckpt")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt", dtype=dtype)
    assert {p.dtype for p in model.parameters()} == {expected}
    with torch.no_grad():
        assert model(ids).logits.dtype == expected


def test_dtype_auto_keeps_the_stored_dtype(tmp_path, tiny):
    CausalLM(tiny.llama()).to(torch.bfloat16).save_pretrained(tmp_path / "ckpt")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt", dtype="auto")
    assert model.dtype == torch.bfloat16


def test_config_overrides_apply_on_load(tmp_path, tiny):
    CausalLM(tiny.llama()).save_pretrained(tmp_path / "ckpt")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt", dropout=0.1)
    assert model.config.dropout == 0.1


def test_masked_lm_loads_from_pretraining_checkpoint_ignoring_nsp_with_warning(tmp_path, caplog, tiny):
    torch.manual_seed(0)
    pretraining = PreTrainingModel(tiny.bert()).eval()
    pretraining.save_pretrained(tmp_path / "ckpt")
    with caplog.at_level(logging.WARNING, logger="llmos.checkpoint"):
        masked = AutoModelForMaskedLM.from_pretrained(tmp_path / "ckpt")
    assert isinstance(masked, MaskedLM)
    assert "nsp.weight" in caplog.text and "pooler.dense.weight" in caplog.text
    ids = torch.randint(0, 80, (2, 6))
    with torch.no_grad():
        assert torch.equal(masked(ids).logits, pretraining(ids).prediction_logits)


def test_missing_classifier_head_is_freshly_initialised_with_warning_naming_keys(tmp_path, caplog, tiny):
    pretraining = PreTrainingModel(tiny.bert())
    pretraining.save_pretrained(tmp_path / "ckpt")
    with caplog.at_level(logging.WARNING, logger="llmos.checkpoint"):
        classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ckpt", num_labels=3)
    assert isinstance(classifier, SequenceClassifier)
    assert "classifier.weight" in caplog.text and "classifier.bias" in caplog.text
    assert torch.equal(classifier.pooler.dense.weight, pretraining.pooler.dense.weight)
    assert classifier.classifier.weight.shape == (3, 32)
    assert classifier.classifier.weight.device.type == "cpu"
    assert classifier.classifier.weight.std() > 0
    with torch.no_grad():
        assert torch.isfinite(classifier(torch.randint(0, 80, (2, 6))).logits).all()


def test_output_loading_info_lists_the_head_keys_a_checkpoint_lacks_and_the_ones_it_ignores(tmp_path, tiny):
    PreTrainingModel(tiny.bert()).save_pretrained(tmp_path / "ckpt")
    classifier, info = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ckpt", num_labels=3,
                                                                          output_loading_info=True)
    assert isinstance(classifier, SequenceClassifier)
    assert info["missing_keys"] == ["classifier.weight", "classifier.bias"]
    assert sorted(info["unexpected_keys"]) == ["mlm.decoder.bias", "mlm.dense.bias", "mlm.dense.weight",
                                               "mlm.norm.bias", "mlm.norm.weight", "nsp.bias", "nsp.weight"]
    assert info["mismatched_keys"] == [] and info["error_msgs"] == []


def test_a_complete_checkpoint_reports_nothing_missing_and_loads_as_a_plain_model_unless_asked(tmp_path, tiny):
    SequenceClassifier(tiny.llama(num_labels=2)).save_pretrained(tmp_path / "ckpt")
    model, info = load_pretrained(tmp_path / "ckpt", output_loading_info=True)
    assert isinstance(model, SequenceClassifier)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    assert isinstance(load_pretrained(tmp_path / "ckpt"), SequenceClassifier)


def test_pretraining_checkpoint_round_trip_keeps_seq_relationship_logits(tmp_path, tiny):
    model = PreTrainingModel(tiny.bert()).eval()
    model.save_pretrained(tmp_path / "ckpt")
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path / "ckpt", kernels=False)  # same modules
    ids = torch.randint(0, 80, (2, 6))
    with torch.no_grad():
        assert torch.equal(loaded(ids).seq_relationship_logits, model(ids).seq_relationship_logits)


def test_from_config_builds_a_fresh_model_of_the_task_head(tiny):
    assert isinstance(AutoModelForCausalLM.from_config(tiny.gpt2()), CausalLM)
    assert isinstance(AutoModelForPreTraining.from_config(tiny.bert()), PreTrainingModel)
    assert isinstance(AutoModelForSequenceClassification.from_config(tiny.bert()), SequenceClassifier)


def test_loading_never_unpickles(tmp_path, monkeypatch, ids, tiny):
    import pickle

    model = CausalLM(tiny.llama()).eval()
    model.save_pretrained(tmp_path / "ckpt")

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert _same_logits(model, AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt"), ids)


@pytest.mark.parametrize("family", ["llama", "gpt2", "sinusoidal"])
def test_loading_builds_on_the_meta_device_without_touching_other_threads(family, tmp_path, tiny):
    """The model is built under `torch.device("meta")` (thread-local), not by patching torch: a module
    another thread builds meanwhile gets real parameters, and the loaded model has no meta tensor left."""
    import threading

    from llmos.checkpoint import load_pretrained

    built_elsewhere = []

    class BuildsAlongside(CausalLM):
        def __init__(self, config):
            worker = threading.Thread(target=lambda: built_elsewhere.append(torch.nn.Linear(2, 2).weight.device))
            worker.start()
            worker.join()
            super().__init__(config)

    torch.manual_seed(0)
    config = tiny.gpt2(position="sinusoidal") if family == "sinusoidal" else getattr(tiny, family)()
    model = CausalLM(config).eval()
    model.save_pretrained(tmp_path / "ckpt")
    loaded = load_pretrained(tmp_path / "ckpt", BuildsAlongside)
    assert built_elsewhere == [torch.device("cpu")]
    assert all(t.device.type == "cpu" for t in [*loaded.parameters(), *loaded.buffers()])
    for name, buffer in model.named_buffers():
        assert torch.equal(dict(loaded.named_buffers())[name], buffer), name
    ids = torch.randint(0, 80, (2, 6))
    assert _same_logits(model, loaded, ids)
