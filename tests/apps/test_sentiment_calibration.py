"""Zero-shot sentiment's calibration on a tiny random chat model: a prior that favours one label is divided
out, the prior is computed once per model and label set, the reply's start and the label words are
tokenized as they follow each other, and the defaults are the prompt chosen on SST-2's training rows."""

from __future__ import annotations

import copy

import pytest
import torch

from llmos import pipeline
from llmos.apps.pipelines.sentiment import ZERO_SHOT_LABELS, SentimentPipeline
from llmos.evaluation.zero_shot import answer_tokens, calibrate

# balanced inputs for `reader`: "+" marks a positive text, "-" a negative one
TEXTS = ["+ a fine day", "- a dull day", "+ so good", "- so bad", "+ the cat sat, happily", "- the cat sat, sadly",
         "+ three cheers", "- three boos", "+ it works", "- it broke", "+ yes", "- no"]
EXPECTED = ["positive", "negative"] * 6


@pytest.fixture(scope="module")
def tiny(tiny_chat_model):
    return {"model": tiny_chat_model[0], "tokenizer": tiny_chat_model[1]}


def reader(tiny, lean_to: str, lean: float = 8.0, signal: float = 4.0):
    """A copy of the tiny model that reads sentiment: its head adds `signal` to the logits of the
    tokens "positive" is scored by for a row whose tokens hold "+", to "negative"'s for "-", and
    `lean` to `lean_to`'s for every row (a prior that has nothing to do with the text). The rows are
    the token ids of the forward pass before the head: the inputs run after the prompts' shared
    prefix, so each row holds its own text."""
    model, tokenizer = copy.deepcopy(tiny["model"]), tiny["tokenizer"]
    _, words = answer_tokens(tokenizer, ZERO_SHOT_LABELS, SentimentPipeline.options["answer_start"])
    ids = dict(zip(ZERO_SHOT_LABELS, words, strict=True))
    plus, minus = (tokenizer.encode(mark, add_special_tokens=False)[0] for mark in "+-")
    rows = {}
    model.transformer.register_forward_pre_hook(lambda module, args: rows.update(ids=args[0]))

    def read(module, inputs, logits):  # logits (B, V): the last position of each row
        logits = logits.clone()
        logits[:, ids[lean_to]] += lean
        logits[:, ids["positive"]] += signal * (rows["ids"] == plus).any(-1, keepdim=True)
        logits[:, ids["negative"]] += signal * (rows["ids"] == minus).any(-1, keepdim=True)
        return logits

    model.lm_head.register_forward_hook(read)
    return {"model": model, "tokenizer": tokenizer}


def labels_of(results):
    return [r["label"] for r in results]


@pytest.mark.parametrize("label", ["positive", "negative"])
def test_calibration_divides_out_a_prior_that_favours_one_label(tiny, label):
    classify = pipeline("sentiment-analysis", **reader(tiny, lean_to=label), batch_size=len(TEXTS))
    assert labels_of(classify(TEXTS, calibrate=False)) == [label] * len(TEXTS)
    assert labels_of(classify(TEXTS)) == EXPECTED


def test_a_text_scored_like_the_content_free_inputs_is_a_tie_after_calibration():
    prior = torch.tensor([0.8, 0.15, 0.05]).log()
    scores = calibrate(torch.stack([prior, torch.tensor([0.5, 0.3, 0.2]).log()]), prior).exp()
    assert torch.allclose(scores[0], torch.full((3,), 1 / 3))
    assert scores[1].argmax() == 2 and torch.allclose(scores[1].sum(), torch.tensor(1.0))  # 0.2 / 0.05 is the most


def test_the_content_free_prior_is_computed_once_per_model_and_label_set(tiny):
    model = copy.deepcopy(tiny["model"])  # a model no other test has calibrated
    calls = []
    model.transformer.register_forward_hook(lambda *_: calls.append(1))

    def passes(pipe, **options) -> int:
        calls.clear()
        pipe("the cat sat", **options)
        return len(calls)

    first = pipeline("sentiment-analysis", model=model, tokenizer=tiny["tokenizer"])
    uncalibrated = passes(first, calibrate=False)
    assert passes(first) > uncalibrated  # the first call computes the prior
    assert passes(first) == uncalibrated
    assert passes(pipeline("sentiment-analysis", model=model, tokenizer=tiny["tokenizer"])) == uncalibrated
    assert passes(first, labels="sad,happy") > uncalibrated  # another label set: its own prior


def test_label_words_follow_the_answer_start_after_a_space_kept_apart(tiny):
    tokenizer = tiny["tokenizer"]  # keeps spaces apart: the space belongs to the reply's start
    start, words = answer_tokens(tokenizer, ["positive", "negative"], "It is")
    assert tokenizer.decode(start) == "It is "
    assert [sorted(tokenizer.decode([i]) for i in w) for w in words] == [["P", "p"], ["N", "n"]]


def test_the_default_prompt_is_the_one_chosen_on_sst2_training_rows(tiny):
    """benchmarks/sentiment_prompts.py chose it (raw 65% -> calibrated about 80% on held-out sentences)."""
    pipe = pipeline("sentiment-analysis", **tiny)
    assert ZERO_SHOT_LABELS == ["positive", "negative"]
    assert pipe.messages({"text": "A fine film."}, pipe.options)[-1]["content"] == (
        "Is the sentiment of this text positive or negative? Answer with one word.\nText: A fine film.")
    assert pipe.options["answer_start"] == "The sentiment of this text is" and pipe.options["calibrate"] is True
