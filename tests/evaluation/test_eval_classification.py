"""Classification evaluation: batched padded predictions equal one-at-a-time ones, the scores equal
scikit-learn's on them, labels are read against the model's label set, and only a trained
classifier loads for evaluation."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from sklearn.metrics import confusion_matrix, f1_score

from llmos.data.labelled import DataError
from llmos.errors import LLMOSError
from llmos.evaluation.classification import evaluate_classification, predict_labels
from llmos.evaluation.loading import load_classifier

LABELS = ["negative", "neutral", "positive"]
WORDS = "the cat sat on the mat . paris is nice and the dog ran far away from home today".split()


def texts(n: int) -> list[str]:
    return [" ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(2 + i % 9)) for i in range(n)]


def one_at_a_time(model, tokenizer, items: list[str]) -> list[int]:
    with torch.no_grad():
        return [int(model(torch.tensor([tokenizer.encode(t)])).logits.argmax(-1)) for t in items]


def test_padded_batches_predict_what_single_examples_do(classifier_checkpoint):
    _, model, tokenizer = classifier_checkpoint
    items = texts(23)
    expected = one_at_a_time(model, tokenizer, items)
    assert len(set(expected)) > 1  # the test would be weak if one class won everywhere
    seen = []
    assert predict_labels(model, tokenizer, items, batch_size=5, progress=lambda d, t: seen.append((d, t))) == expected
    assert seen[-1] == (23, 23)


def test_scores_match_scikit_learn_on_a_named_label_file(tmp_path, classifier_checkpoint):
    _, model, tokenizer = classifier_checkpoint
    items = texts(30)
    gold = [(i * 5) % 3 for i in range(30)]
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": LABELS[g]}) + "\n" for t, g in zip(items, gold, strict=True)))
    result = evaluate_classification(model, tokenizer, path, batch_size=4)
    predicted = one_at_a_time(model, tokenizer, items)
    assert result["n_examples"] == 30 and result["label_names"] == LABELS
    assert result["metrics"]["accuracy"] == pytest.approx(sum(p == g for p, g in zip(predicted, gold, strict=True)) / 30)
    assert result["metrics"]["macro_f1"] == pytest.approx(
        f1_score(gold, predicted, average="macro", labels=[0, 1, 2], zero_division=0))
    assert result["confusion_matrix"] == confusion_matrix(gold, predicted, labels=[0, 1, 2]).tolist()
    assert sum(s["support"] for s in result["per_label"].values()) == 30
    assert evaluate_classification(model, tokenizer, path, max_examples=7)["n_examples"] == 7


def test_a_label_the_model_does_not_know_names_the_line_and_the_valid_labels(tmp_path, classifier_checkpoint):
    _, model, tokenizer = classifier_checkpoint
    path = tmp_path / "dev.tsv"
    path.write_text("label\ttext\npositive\tnice\nhappy\tthe cat\n")
    with pytest.raises(DataError, match=r"dev.tsv:3: label 'happy' is not in the label set.*negative"):
        evaluate_classification(model, tokenizer, path)


def test_a_causal_lm_checkpoint_is_not_a_classifier(causal_checkpoint):
    path, _, _ = causal_checkpoint
    with pytest.raises(LLMOSError, match="holds a CausalLM, not a sequence classifier"):
        load_classifier(path)


def headless_copy(source, target):
    """A copy of the classifier checkpoint `source` whose classification head was not saved."""
    from safetensors.torch import load_file, save_file

    target.mkdir()
    for f in source.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    tensors = load_file(target / "model.safetensors")
    save_file({k: v for k, v in tensors.items() if not k.startswith("classifier.")}, target / "model.safetensors",
              metadata={"format": "pt"})
    return target


def test_a_classifier_saved_without_its_head_is_refused_as_untrained(tmp_path, classifier_checkpoint):
    source, _, _ = classifier_checkpoint
    target = headless_copy(source, tmp_path / "headless")
    with pytest.raises(LLMOSError, match=r"no trained classification head \(the checkpoint lacks \['classifier"):
        load_classifier(target)
    assert load_classifier(source).model.config.label_names == LABELS


def test_a_headless_classifier_is_refused_even_when_the_app_silences_warnings(tmp_path, classifier_checkpoint):
    target = headless_copy(classifier_checkpoint[0], tmp_path / "headless")
    logging.disable(logging.WARNING)  # an application's choice: the refusal must not depend on log records
    try:
        with pytest.raises(LLMOSError, match="no trained classification head"):
            load_classifier(target)
    finally:
        logging.disable(logging.NOTSET)


def classifier_adapter(tmp_path, causal_checkpoint):
    """(adapter directory, the classifier it was saved from): LoRA on the causal base, head saved with it."""
    from llmos.adapters import add_lora
    from llmos.checkpoint.peft_format import resolve_targets, save_adapter
    from llmos.config import ModelConfig
    from llmos.model import SequenceClassifier

    base_path, base, _ = causal_checkpoint
    config = ModelConfig.from_dict({**base.config.to_dict(), "num_labels": 3, "label_names": LABELS})
    model = SequenceClassifier(config)
    model.transformer.load_state_dict(base.transformer.state_dict())
    torch.manual_seed(2)
    add_lora(model, resolve_targets(model, "all-linear")[0], r=4)
    lora_b = [p for name, p in model.named_parameters() if ".B." in name]
    assert lora_b  # B starts at zero: give the adapter an effect to carry
    with torch.no_grad():
        model.classifier.weight.normal_(0, 2.0)
        for p in lora_b:
            p.normal_(0, 0.1)
    return save_adapter(model.eval(), tmp_path / "adapter", base_model=str(base_path), train_heads=True), model


def test_a_lora_classifier_adapter_evaluates_on_its_base_with_the_base_tokenizer(tmp_path, causal_checkpoint,
                                                                                 tokenizer):
    adapter, model = classifier_adapter(tmp_path, causal_checkpoint)
    loaded = load_classifier(adapter)
    assert loaded.model.config.label_names == LABELS and loaded.report.adapters == {"default": adapter}
    assert loaded.tokenizer.get_vocab() == tokenizer.get_vocab()
    items = texts(10)
    assert predict_labels(loaded.model, tokenizer, items) == one_at_a_time(model, tokenizer, items)


def test_loading_info_counts_an_adapters_saved_head_as_loaded_and_a_bare_base_head_as_missing(
        tmp_path, causal_checkpoint):
    from llmos.auto import AutoModelForSequenceClassification

    adapter, _ = classifier_adapter(tmp_path, causal_checkpoint)
    _, info = AutoModelForSequenceClassification.from_pretrained(adapter, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    _, bare = AutoModelForSequenceClassification.from_pretrained(causal_checkpoint[0], num_labels=3,
                                                                 output_loading_info=True)
    assert bare["missing_keys"] == ["classifier.weight", "classifier.bias"]


def test_a_gguf_file_is_not_a_classifier(tmp_path):
    from gguf_models import write_gguf_model

    with pytest.raises(LLMOSError, match="is a GGUF file"):
        load_classifier(write_gguf_model(tmp_path, "llama", "Q4_1"))
