"""Layer 8: a plain Python function as a tool: its JSON schema from type hints and docstring.

`function_schema(fn)` gives the OpenAI-shaped tool description
(`{"type": "function", "function": {"name", "description", "parameters"}}`)
that constrained decoding and chat templates use: parameter types from the
annotations (str, int, float, bool, list[...], dict, Literal[...] as an enum,
Optional; `Annotated[str, {"pattern": ...}]` adds the dict's JSON-schema
keywords, which the grammar then enforces), required = parameters without a
default, descriptions from a Google-style `Args:` section or `:param name:`
lines.

A tool that is not a Python function with hints (one an MCP server offers,
whose parameters already are a JSON schema) is a `Tool`: it carries its own
name, description and parameters, and `function_schema` passes them through.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmos.errors import LLMOSError


class ToolError(LLMOSError):
    """A tool cannot be described, or refused its input (the message says why)."""


@dataclass(frozen=True)
class Tool:
    """A tool whose schema is given, not read from type hints: `fn(**arguments)` runs it."""

    name: str
    description: str
    parameters: dict[str, Any]  # a JSON schema of type "object"
    fn: Callable[..., Any]

    def __call__(self, **arguments: Any) -> Any:
        return self.fn(**arguments)


_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object"}


def type_schema(annotation: Any, where: str) -> dict[str, Any]:
    """The JSON schema of one annotation."""
    if typing.get_origin(annotation) is typing.Annotated:  # Annotated[str, {"pattern": ...}]: dicts add keywords
        schema = type_schema(annotation.__origin__, where)
        for extra in annotation.__metadata__:
            if isinstance(extra, dict):
                schema.update(extra)
        return schema
    if annotation in _SIMPLE:
        return {"type": _SIMPLE[annotation]}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        item = args[0] if args else Any
        return {"type": "array", "items": type_schema(item, where) if item is not Any else {}}
    if origin is dict:
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return type_schema(options[0], where)
        return {"anyOf": [type_schema(a, where) for a in options]}
    raise ToolError(f"{where} has type {annotation!r}, which has no JSON schema here; use str, int, float, bool, "
                    "list[...], dict, Literal[...] or Optional[...]")


def _param_docs(doc: str) -> dict[str, str]:
    found = dict(re.findall(r":param\s+(\w+):\s*(.+)", doc))
    section = re.search(r"\n\s*(?:Args|Arguments|Parameters):\s*\n(.*?)(?:\n\s*\n|\Z)", doc, re.S)
    if section:
        found.update(re.findall(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", section.group(1), re.M))
    return found


def function_schema(fn: Callable[..., Any] | Tool) -> dict[str, Any]:
    """The OpenAI tool description of `fn` (see the module docstring)."""
    if isinstance(fn, Tool):
        return {"type": "function", "function": {"name": fn.name, "description": fn.description,
                                                 "parameters": fn.parameters}}
    name = getattr(fn, "__name__", None)
    if not name or name == "<lambda>":
        raise ToolError("a tool needs a named function (def name(...)), not a lambda")
    doc = inspect.getdoc(fn) or ""
    hints = typing.get_type_hints(fn, include_extras=True)
    param_docs = _param_docs("\n" + doc)
    properties, required = {}, []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolError(f"tool {name!r}: *args / **kwargs cannot be described; name each parameter")
        if param.name not in hints:
            raise ToolError(f"tool {name!r}: parameter {param.name!r} needs a type annotation")
        schema = type_schema(hints[param.name], f"tool {name!r} parameter {param.name!r}")
        if param.name in param_docs:
            schema["description"] = param_docs[param.name].strip()
        if param.default is param.empty:
            required.append(param.name)
        else:
            schema["default"] = param.default
        properties[param.name] = schema
    summary = doc.split("\n\n")[0].strip() if doc else ""
    return {"type": "function", "function": {
        "name": name, "description": summary,
        "parameters": {"type": "object", "properties": properties, "required": required,
                       "additionalProperties": False}}}
