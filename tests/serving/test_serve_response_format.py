"""response_format over the OpenAI API: json_object and json_schema replies always parse and validate,
streamed too; a schema the grammar engine cannot compile is a 400, never free text."""

from __future__ import annotations

import json

import openai
import pytest
import torch

jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("llguidance")

SCHEMA = {"type": "object", "properties": {"word": {"type": "string", "maxLength": 6},
                                           "count": {"type": "integer", "minimum": 0, "maximum": 99},
                                           "ok": {"type": "boolean"}},
          "required": ["word", "count", "ok"], "additionalProperties": False}
MESSAGES = [{"role": "user", "content": "hello"}]


def json_schema_format(schema=SCHEMA):
    return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}}


def test_json_schema_replies_validate_greedy_and_sampled(client):
    for extra in ({"temperature": 0}, {"temperature": 1.3, "n": 3, "seed": 5}):
        reply = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=60,
                                               response_format=json_schema_format(), **extra)
        for choice in reply.choices:
            assert choice.finish_reason == "stop"
            jsonschema.validate(json.loads(choice.message.content), SCHEMA)


def test_json_object_reply_is_an_object_and_streams(client):
    reply = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=60, temperature=0,
                                           response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.choices[0].message.content), dict)
    stream = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=60, temperature=0,
                                            response_format=json_schema_format(), stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    jsonschema.validate(json.loads(text), SCHEMA)


def test_a_schema_the_engine_cannot_compile_is_a_400(client):
    bad = {"type": "string", "pattern": "(unclosed"}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=10,
                                       response_format=json_schema_format(bad))
    assert info.value.body["param"] == "response_format.json_schema.schema"
    with pytest.raises(openai.BadRequestError, match="not valid"):
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=10,
                                       response_format={"type": "yaml"})


SELF_REFERENCE = {"$ref": "#"}  # compiles, but no text matches it
SELF_CONTAINING = {"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]}  # forced text never ends


@pytest.mark.parametrize("schema", [SELF_REFERENCE, SELF_CONTAINING])
@pytest.mark.parametrize("stream", [False, True])
def test_a_schema_the_engine_compiles_but_cannot_serve_is_a_400_before_decoding(client, schema, stream):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=20, stream=stream,
                                       response_format=json_schema_format(schema))
    assert info.value.body["param"] == "response_format.json_schema.schema"
    assert info.value.body["code"] == "invalid_response_format"
    assert "cannot serve" in info.value.body["message"]


def test_a_grammar_the_engine_gives_up_on_mid_reply_fails_the_request_never_returns_text(client, server, tokenizer):
    """The first step is fine (a number or an object may start), but the object's required property
    has a schema no text matches: the engine fails after `{"a": `. The model is pushed to "{"."""
    schema = {"anyOf": [{"type": "integer"}, {"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}},
                                              "required": ["a"]}], "$defs": {"x": {"$ref": "#/$defs/x"}}}
    bias, brace = server.model.lm_head.bias, tokenizer.token_to_id("{")
    saved = bias[brace].item()
    with torch.no_grad():
        bias[brace] = 1e4
    try:
        request = {"model": "tiny", "messages": MESSAGES, "max_tokens": 20,
                   "response_format": json_schema_format(schema)}
        with pytest.raises(openai.BadRequestError) as whole:
            client.chat.completions.create(**request)
        with pytest.raises(openai.APIError) as streamed:  # the 200 has begun: an error event ends it
            list(client.chat.completions.create(stream=True, **request))
        for error in (whole.value.body, streamed.value.body):
            assert error["param"] == "response_format.json_schema.schema"
            assert "simplify the schema" in error["message"]
    finally:
        with torch.no_grad():
            bias[brace] = saved
