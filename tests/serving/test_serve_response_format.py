"""response_format over the OpenAI API: json_object and json_schema replies always parse and validate,
streamed too; a schema the grammar engine cannot compile is a 400, never free text."""

from __future__ import annotations

import json

import openai
import pytest

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
    assert info.value.body["param"] == "response_format"
    with pytest.raises(openai.BadRequestError, match="not valid"):
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=10,
                                       response_format={"type": "yaml"})
