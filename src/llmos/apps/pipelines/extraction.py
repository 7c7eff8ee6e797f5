"""Layer 8: the `extraction` task: a text -> a JSON object of the fields asked for, valid by construction.

The reply is decoded under the JSON schema's grammar (`generate(json_schema=)`),
so it always parses and validates; the schema decides the shape, the model only
the values. Give a JSON schema (a dict, or the path of a .json file) or a list
of field names (`"name,city,age:integer"`: each a string unless `:type` says
integer, number or boolean), which becomes an object schema with every field
required and no others. Its string values come back stripped of spaces at
their ends: SmolLM2 writes {"city": " Leeds"}, because " Leeds" is one token
and "Leeds" two (a grammar that forbids the space made it write "Lancaster").
A schema you give is yours: its values come back as decoded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmos.apps.pipelines.base import Pipeline, PipelineError, Reply

FIELD_TYPES = ("string", "integer", "number", "boolean")


def fields_schema(fields: str | list[str]) -> dict[str, Any]:
    """`"name,city,age:integer"` or a list of such names -> an object schema requiring exactly them."""
    names = [f.strip() for f in (fields.split(",") if isinstance(fields, str) else fields) if f.strip()]
    if not names:
        raise PipelineError("extraction: fields is empty; name at least one field, e.g. fields='name,city'",
                            param="options.fields")
    properties = {}
    for field in names:
        name, _, kind = field.partition(":")
        kind = kind.strip() or "string"
        if kind not in FIELD_TYPES:
            raise PipelineError(f"extraction: field {field!r} has type {kind!r}; valid: {', '.join(FIELD_TYPES)}",
                                param="options.fields")
        properties[name.strip()] = {"type": kind}
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def load_schema(schema: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(schema, dict):
        return schema
    path = Path(schema)
    if not path.is_file():
        raise PipelineError(f"extraction: schema file {str(path)!r} does not exist", param="options.schema")
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise PipelineError(f"extraction: schema file {str(path)!r} is not JSON ({exc})",
                            param="options.schema") from None
    if not isinstance(loaded, dict):
        raise PipelineError(f"extraction: schema file {str(path)!r} holds a {type(loaded).__name__}, not a schema "
                            "object", param="options.schema")
    return loaded


class ExtractionPipeline(Pipeline):
    """`pipe(text, fields="name,city")` or `pipe(text, schema={...})` -> a dict valid against the schema."""

    task = "extraction"
    summary = "a text -> JSON with the fields (or JSON schema) you give, always valid"
    output = "dict (valid against the schema)"
    system = "You extract information from text. Reply with JSON only."
    template = ("Extract these fields from the text below: {{ field_names }}. Copy each value from the text.\n\n"
                "Text: {{ text }}")
    defaults = {"max_new_tokens": 256, "do_sample": False}
    options = {"schema": None, "fields": None}

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        schema, fields = options["schema"], options["fields"]
        if (schema is None) == (fields is None):
            raise PipelineError("extraction needs either fields (e.g. fields='name,city') or schema (a JSON schema "
                                "or a .json file), " + ("not both" if schema is not None else "and got neither"),
                                param="options.fields")
        return {**options, "schema": load_schema(schema) if schema is not None else fields_schema(fields)}

    def variables(self, item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        names = list(options["schema"].get("properties", {})) or ["the information asked for by the JSON schema"]
        return {**options, **item, "field_names": ", ".join(names)}

    def constraint(self, item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        return {"json_schema": options["schema"]}

    def parse(self, reply: Reply, item: dict[str, Any], options: dict[str, Any]) -> Any:
        result = parse_json(reply, self.task)
        if options["fields"] is not None:  # our schema: plain strings, which stripping keeps valid
            result = {k: v.strip() if isinstance(v, str) else v for k, v in result.items()}
        return result


def parse_json(reply: Reply, task: str) -> Any:
    """The reply's JSON; one cut at the length limit before it closed is an error saying so."""
    try:
        return json.loads(reply.text)
    except ValueError:
        raise PipelineError(f"{task}: the reply was cut at max_new_tokens={reply.max_new_tokens} before its JSON "
                            f"was complete ({reply.text[:60]!r}...); raise max_new_tokens",
                            param="options.max_new_tokens") from None
