"""Constrained decoding: whatever the (random) model prefers, the new text matches the constraint,
under greedy decoding, sampling and beam search, with one constraint per row or one for all."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import torch
from tiny_lm import tiny_lm

from llmos.generation import ConstraintError, GenerationError, generate
from llmos.generation.constrained import DEFAULT_MAX_STRING_LENGTH, bound_strings


@pytest.fixture(scope="module")
def setup():
    return tiny_lm(0)


def texts(tokenizer, out, prompt_length):
    return [tokenizer.decode(row[prompt_length:], skip_special_tokens=True) for row in out]


def new_text(model, tokenizer, prompt="the cat", **kwargs):
    ids = torch.tensor([tokenizer.encode(prompt)])
    out = generate(model, ids, tokenizer=tokenizer, max_new_tokens=kwargs.pop("max_new_tokens", 120), **kwargs)
    return texts(tokenizer, out, ids.shape[1])


SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120},
                                           "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
          "required": ["name", "age", "tags"], "additionalProperties": False}
SAMPLED = {"do_sample": True, "temperature": 1.5, "seed": 3, "num_return_sequences": 3}


@pytest.mark.parametrize("decoding", [{}, SAMPLED, {"num_beams": 3, "num_return_sequences": 3},
                                      {**SAMPLED, "num_beams": 3}])
def test_json_schema_output_always_validates(setup, decoding):
    model, tokenizer = setup
    outputs = new_text(model, tokenizer, json_schema=SCHEMA, **decoding)
    assert len(outputs) == decoding.get("num_return_sequences", 1)
    for text in outputs:
        jsonschema.validate(json.loads(text), SCHEMA)


def test_regex_and_choices_are_matched_exactly(setup):
    model, tokenizer = setup
    for text in new_text(model, tokenizer, regex=r"[0-9]{3}-(yes|no)", do_sample=True, seed=1,
                         num_return_sequences=4):
        assert re.fullmatch(r"[0-9]{3}-(yes|no)", text), text
    for text in new_text(model, tokenizer, choices=["yes", "no", "maybe"], do_sample=True, seed=2,
                         num_return_sequences=4):
        assert text in ("yes", "no", "maybe")


def test_beams_fork_and_each_keeps_its_own_grammar_state(setup):
    """Beams that share a prefix and then split (different tokens, different grammar states)
    must each end in the language: a matcher left with the wrong beam would refuse or allow the
    wrong tokens. Once a beam's grammar is complete, only end-of-sequence may follow."""
    model, tokenizer = setup
    pattern = r"(ab|ba)[0-9]{2}(yes|no)"
    ids = torch.tensor([tokenizer.encode("the cat")])
    out = generate(model, ids, tokenizer=tokenizer, regex=pattern, num_beams=4, num_return_sequences=4,
                   max_new_tokens=30, return_dict_in_generate=True)
    found = texts(tokenizer, out.sequences, ids.shape[1])
    assert all(re.fullmatch(pattern, text) for text in found), found
    assert len(set(found)) > 1  # the beams really went different ways
    parents = out.beam_indices.tolist()
    assert any(len({row[step] for row in parents}) < len(parents) for step in range(len(parents[0]))), parents
    for row in out.sequences.tolist():
        end = [t for t in row[ids.shape[1]:] if t != tokenizer.eos_token_id]
        assert row[ids.shape[1] + len(end)] == tokenizer.eos_token_id  # complete, then EOS


@pytest.mark.parametrize("decoding, message", [({}, "no token is allowed for row 0 at new token 2"),
                                               ({"num_beams": 2}, "found 0 hypotheses")])
def test_a_constraint_that_leaves_no_token_is_an_error_not_free_text(setup, decoding, message):
    """After "a" the grammar allows only EOS, which min_new_tokens forbids: nothing is allowed."""
    model, tokenizer = setup
    with pytest.raises(GenerationError, match=message):
        new_text(model, tokenizer, choices=["a"], min_new_tokens=3, max_new_tokens=5, **decoding)


def test_each_row_follows_its_own_constraint(setup):
    model, tokenizer = setup
    prompts = ["the cat", "the mat", "yes no"]  # two tokens each: no padding
    ids = torch.tensor([tokenizer.encode(p) for p in prompts])
    rows = [{"json_schema": SCHEMA}, {"regex": r"[0-9]{2,4}"}, None]
    out = generate(model, ids, tokenizer=tokenizer, constraints=rows, max_new_tokens=60)
    for prompt, constraint, row in zip(prompts, rows, out, strict=True):  # as if each ran alone
        alone = generate(model, torch.tensor([tokenizer.encode(prompt)]), tokenizer=tokenizer,
                         max_new_tokens=60, **(constraint or {}))[0]
        assert row[:len(alone)].tolist() == alone.tolist()
    for decoding in (SAMPLED, {"num_beams": 2, "num_return_sequences": 2}):
        out = generate(model, ids, tokenizer=tokenizer, constraints=rows, max_new_tokens=60, **decoding)
        found = texts(tokenizer, out, ids.shape[1])
        copies = decoding["num_return_sequences"]
        assert len(found) == 3 * copies
        for text in found[:copies]:
            jsonschema.validate(json.loads(text), SCHEMA)
        assert all(re.fullmatch(r"[0-9]{2,4}", text) for text in found[copies:2 * copies])


def test_stop_strings_end_constrained_rows_at_different_steps(setup):
    """A row ended by a stop string is padded while others go on; its matcher is not fed the padding."""
    model, tokenizer = setup
    ids = torch.tensor([tokenizer.encode("the cat")])
    out = generate(model, ids, tokenizer=tokenizer, regex=r"a{1,8}bc", stop_strings=["b"], do_sample=True,
                   temperature=3.0, seed=1, num_return_sequences=6, max_new_tokens=12)
    found = texts(tokenizer, out, ids.shape[1])
    assert all(re.fullmatch(r"a{1,8}b", text) for text in found), found
    lengths = (out[:, ids.shape[1]:] != tokenizer.eos_token_id).sum(dim=1)
    assert int(lengths.max() - lengths.min()) >= 2  # some rows were padded for steps while others ran


@pytest.mark.parametrize("decoding", [{}, {"num_beams": 2}])
def test_a_constrained_stream_is_the_validated_result(setup, decoding):
    from llmos.generation import TextStreamer

    class Collect(TextStreamer):
        def on_text(self, text, stream_end=False):
            self.chunks.append(text)

    model, tokenizer = setup
    streamer = Collect(tokenizer, skip_prompt=True)
    streamer.chunks = []
    (text,) = new_text(model, tokenizer, json_schema=SCHEMA, streamer=streamer, **decoding)
    assert "".join(streamer.chunks) == text
    jsonschema.validate(json.loads(text), SCHEMA)


@pytest.mark.parametrize("kwargs, message", [
    (dict(regex="(unclosed"), r"cannot compile regex.*unclosed group"),
    (dict(regex="a", choices=["b"]), "one constraint"),
    (dict(json_schema={"type": "strin"}), "cannot compile json_schema.*strin"),
    (dict(constraints=[{"regex": "a"}, None]), r"constraints has 2 entries for 3 input rows"),
    (dict(constraints={"regex": "a"}), r"constraints has a dict for 3 input rows"),
    (dict(constraints=[None, {"regex": "a", "choices": ["b"]}, None]), r"constraints\[1\]=.*one key"),
    (dict(constraints=[None, None, {"regex": "(unclosed"}]), r"constraints\[2\]: .*cannot compile regex"),
    (dict(constraints=[{"json_schema": None}, None, None]), r"constraints\[0\]=.*no value"),
    (dict(constraints=["[0-9]+", None, None]), r"constraints\[0\]='\[0-9\]\+'"),
    (dict(constraints=[None, None, None], regex="a"), "not both"),
])
def test_bad_constraints_are_one_clear_error_before_decoding(setup, kwargs, message):
    model, tokenizer = setup
    ids = torch.tensor([tokenizer.encode(p) for p in ("the cat", "the mat", "yes no")])
    with pytest.raises(ConstraintError, match=message):
        generate(model, ids, tokenizer=tokenizer, max_new_tokens=4, **kwargs)


def test_a_constraint_without_a_tokenizer_is_refused(setup):
    model, tokenizer = setup
    with pytest.raises(ConstraintError, match="needs tokenizer"):
        generate(model, torch.tensor([tokenizer.encode("the cat")]), regex="a", max_new_tokens=4)


def never_closing_strings(seed: int = 1):
    """A tiny model that writes a quote only when the grammar allows nothing else: its strings run on."""
    import copy

    from llmos.model import CausalLM

    model, tokenizer = tiny_lm(seed, max_seq_len=1024)
    config = copy.deepcopy(model.config)
    config.lm_head_bias = True
    biased = CausalLM(config).eval()
    biased.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        biased.lm_head.bias.zero_()
        for token_id in range(len(tokenizer)):
            if '"' in tokenizer.decode([token_id]):
                biased.lm_head.bias[token_id] = -1e4
    return biased, tokenizer


def test_a_string_without_max_length_is_closed_by_the_grammar_and_a_given_max_length_wins():
    model, tokenizer = never_closing_strings()
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "code": {"type": "string", "maxLength": 3}},
              "required": ["city", "code"], "additionalProperties": False}
    [text] = new_text(model, tokenizer, json_schema=schema, max_new_tokens=900)
    value = json.loads(text)  # the reply ended: cut by max_new_tokens, it would not parse
    assert len(value["city"]) == DEFAULT_MAX_STRING_LENGTH and len(value["code"]) == 3


def test_bound_strings_leaves_data_and_strings_with_a_language_of_their_own_alone():
    schema = {"type": "object", "properties": {
        "free": {"type": ["string", "null"]}, "long": {"type": "string", "minLength": 300},
        "date": {"type": "string", "format": "date"}, "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "kind": {"type": "string", "enum": ["a", "b"]}, "fixed": {"const": {"type": "string"}},
        "tags": {"type": "array", "items": {"type": "string"}}},
        "$defs": {"name": {"type": "string", "maxLength": 9}}}
    bounded = bound_strings(schema)
    properties = bounded["properties"]
    assert properties["free"]["maxLength"] == DEFAULT_MAX_STRING_LENGTH
    assert properties["tags"]["items"]["maxLength"] == DEFAULT_MAX_STRING_LENGTH
    assert properties["long"]["maxLength"] == 300  # never below minLength
    assert "maxLength" not in properties["date"] and "maxLength" not in properties["code"]
    assert "maxLength" not in properties["kind"] and properties["fixed"] == {"const": {"type": "string"}}
    assert bounded["$defs"]["name"]["maxLength"] == 9 and "maxLength" not in schema["properties"]["free"]
