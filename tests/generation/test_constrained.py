"""Constrained decoding: whatever the (random) model prefers, the new text matches the constraint."""

from __future__ import annotations

import json
import re

import pytest
import torch

from llmos.config import ModelConfig
from llmos.generation import generate
from llmos.generation.constrained import ConstraintError
from llmos.model import CausalLM

pytest.importorskip("llguidance")

TEXTS = ['{"name": "Ana", "age": 31, "tags": ["a", "b"]}', "the cat sat on the mat", "yes no maybe 0123456789",
         '{"ok": true, "n": null, "x": -1.5}'] * 5


@pytest.fixture(scope="module")
def setup():
    from llmos.tokenizer.training import train_tokenizer

    tokenizer = train_tokenizer(TEXTS, kind="bpe", vocab_size=320, min_frequency=1)
    config = ModelConfig.from_preset("nano", vocab_size=len(tokenizer), d_model=32, n_layers=2, n_heads=4,
                                     n_kv_heads=2, d_ff=48, max_seq_len=256, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    return CausalLM(config).eval(), tokenizer


def new_text(model, tokenizer, **kwargs):
    prompt = torch.tensor([tokenizer.encode("the cat")])
    out = generate(model, prompt, tokenizer=tokenizer, max_new_tokens=120, **kwargs)
    return [tokenizer.decode(row[prompt.shape[1]:], skip_special_tokens=True) for row in out]


SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120},
                                           "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
          "required": ["name", "age", "tags"], "additionalProperties": False}


@pytest.mark.parametrize("sampling", [{}, {"do_sample": True, "temperature": 1.5, "seed": 3, "num_return_sequences": 3}])
def test_json_schema_output_always_validates(setup, sampling):
    jsonschema = pytest.importorskip("jsonschema")
    model, tokenizer = setup
    for text in new_text(model, tokenizer, json_schema=SCHEMA, **sampling):
        jsonschema.validate(json.loads(text), SCHEMA)


def test_regex_and_choices_are_matched_exactly(setup):
    model, tokenizer = setup
    for text in new_text(model, tokenizer, regex=r"[0-9]{3}-(yes|no)", do_sample=True, seed=1,
                         num_return_sequences=4):
        assert re.fullmatch(r"[0-9]{3}-(yes|no)", text), text
    for text in new_text(model, tokenizer, choices=["yes", "no", "maybe"], do_sample=True, seed=2,
                         num_return_sequences=4):
        assert text in ("yes", "no", "maybe")


def test_a_constraint_the_engine_cannot_compile_is_an_error_not_free_text(setup):
    model, tokenizer = setup
    with pytest.raises(ConstraintError, match="cannot compile.*unclosed group"):
        new_text(model, tokenizer, regex="(unclosed")
    with pytest.raises(ConstraintError, match="one constraint"):
        new_text(model, tokenizer, regex="a", choices=["b"])
