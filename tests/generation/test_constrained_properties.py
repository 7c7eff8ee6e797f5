"""Property: for random JSON schemas, whatever tiny random models prefer, constrained output is
valid JSON that the schema accepts, under greedy decoding, sampling and beam search.

The schemas are generated bounded (strings with maxLength, arrays with maxItems, objects closed
by additionalProperties false, integers with a range), so `serialized_bound` gives an upper bound
on their bytes; every token is at least one byte, so with that many new tokens every output
must finish (end with EOS) and validate. The one unbounded part is a JSON number's fraction
(1.000000...), which a random model may extend until it is cut: such a cut is accepted only if
the text holds a number whose fraction has run past its byte allowance, and nowhere else.
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import torch
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from tiny_lm import tiny_lm

from llmos.generation import generate

NUMBER_BYTES = 24  # allowance for one number: sign + 3 integer digits + "." + 19 fraction digits
KEYS = st.sampled_from(["name", "age", "tags", "ok", "id", "x"])
PATTERNS = ["^[a-c]*$", "^[0-9]*$", "^(ab|c)*$"]  # any length 0..maxLength is possible
MAX_SEQ_LEN = 1024
# a number past its allowance: more fraction digits than NUMBER_BYTES leaves after "-60." or "360."
RUNAWAY_FRACTION = re.compile(r"\.\d{" + str(NUMBER_BYTES - 5) + ",}")


@st.composite
def strings(draw):
    longest = draw(st.integers(0, 4))
    schema = {"type": "string", "maxLength": longest, "minLength": draw(st.integers(0, longest))}
    pattern = draw(st.none() | st.sampled_from(PATTERNS))
    return schema if pattern is None else {**schema, "pattern": pattern}


@st.composite
def ranges(draw, kind):
    low = draw(st.integers(-60, 60))
    return {"type": kind, "minimum": low, "maximum": low + draw(st.integers(0, 300))}


ENUM_VALUES = st.one_of(st.sampled_from(["a", "b", "yes", "no"]), st.integers(-3, 3), st.booleans(), st.none())
SCALARS = st.one_of(
    ranges("integer"), ranges("number"), strings(), st.just({"type": "boolean"}), st.just({"type": "null"}),
    st.lists(ENUM_VALUES, min_size=1, max_size=4, unique_by=json.dumps).map(lambda values: {"enum": values}),
)


@st.composite
def objects(draw, children):
    properties = draw(st.dictionaries(KEYS, children, min_size=1, max_size=3))
    required = draw(st.lists(st.sampled_from(sorted(properties)), unique=True))
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


@st.composite
def arrays(draw, children):
    fewest = draw(st.integers(0, 2))
    return {"type": "array", "items": draw(children), "minItems": fewest, "maxItems": fewest + draw(st.integers(0, 2))}


SCHEMAS = objects(st.recursive(SCALARS, lambda children: objects(children) | arrays(children), max_leaves=5))


def serialized_bound(schema: dict) -> int:
    """Most bytes a value of `schema` takes as constrained decoding writes it (", " and ": "
    separators, no other whitespace), with NUMBER_BYTES for each number."""
    if "enum" in schema:
        return max(len(json.dumps(value)) for value in schema["enum"])
    kind = schema["type"]
    if kind == "object":
        return 2 + sum(len(json.dumps(key)) + 2 + serialized_bound(value) + 2
                       for key, value in schema["properties"].items())
    if kind == "array":
        return 2 + schema["maxItems"] * (serialized_bound(schema["items"]) + 2)
    if kind == "string":
        return 2 + 6 * schema["maxLength"]  # a character: at most 4 UTF-8 bytes or a 6-byte escape
    if kind == "integer":
        return max(len(str(schema["minimum"])), len(str(schema["maximum"])))
    return {"number": NUMBER_BYTES, "boolean": 5, "null": 4}[kind]


def has_number(schema: dict) -> bool:
    children = [*schema.get("properties", {}).values(), *([schema["items"]] if "items" in schema else [])]
    return schema.get("type") == "number" or any(has_number(child) for child in children)


DECODINGS = {"greedy": {}, "sampled": {"do_sample": True, "num_return_sequences": 3},
             "beam": {"num_beams": 2, "num_return_sequences": 2}}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: on a shared 2-core machine, a second torch thread only waits for the first."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@settings(max_examples=20, deadline=None, database=None, print_blob=True)
@given(schema=SCHEMAS, model_seed=st.integers(0, 2), sample_seed=st.integers(0, 2**16))
def test_constrained_json_always_validates(schema, model_seed, sample_seed):
    model, tokenizer = tiny_lm(model_seed, MAX_SEQ_LEN)
    prompt = torch.tensor([tokenizer.encode("the cat")])
    T = prompt.shape[1]
    budget = serialized_bound(schema) + 2  # the EOS, and one spare
    assume(T + budget <= MAX_SEQ_LEN)  # a rare deep array of objects outgrows the model's context: skip it
    for name, decoding in DECODINGS.items():
        out = generate(model, prompt, tokenizer=tokenizer, json_schema=schema, max_new_tokens=budget,
                       seed=sample_seed, **decoding)
        assert out.shape[0] == decoding.get("num_return_sequences", 1)
        for row in out.tolist():
            text = tokenizer.decode(row[T:], skip_special_tokens=True)
            if tokenizer.eos_token_id in row[T:]:
                jsonschema.validate(json.loads(text), schema)
                event(f"{name}: complete and valid")
            else:  # cut at max_new_tokens: legitimate only inside a number's unbounded fraction
                assert has_number(schema), f"{name}: a bounded schema was cut: {text!r}"
                assert RUNAWAY_FRACTION.search(text), f"{name}: cut outside a number: {text!r}"
                event(f"{name}: cut in a number's fraction")
