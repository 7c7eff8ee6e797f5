"""Layer 6 (data): tools to teach a model with: the synthetic catalogue, and a user's own tools.

A `ToolFamily` is one tool as `llmos teach-tools` needs it: its OpenAI function
description (under its own name or another it may be listed under, so a model
learns to read the listing, not to remember names), the requests that need it
(templates whose `{slots}` are its parameters), how to draw argument values
(pools: cities, currencies, dates, numbers, ...), a result it could give back
and answers written from that result. `load_catalogue()` reads the families
that ship with LLMOS (tool_catalogue.yaml: weather, stocks, orders, calendars,
unit and currency conversion, search, email, reminders, translation,
databases, arithmetic, dates, ...; some held out from training to measure how
it carries over). `family_for_function` makes a family of any function
description, its requests taken from the user's examples (their argument
values become slots, so new values are drawn) or, without examples, written
from its description. Every draw comes from the `random.Random` it is given,
so a seed gives the same data.
"""

from __future__ import annotations

import datetime
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.data.jsonl import DataError
from llmos.yaml_files import parse_yaml

CATALOGUE = Path(__file__).with_name("tool_catalogue.yaml")
SLOT = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
NUMBERS = re.compile(r"(int|num):(-?\d+)-(-?\d+)")
PAIR = re.compile(r"(\w+)\.(\d)")
# parameter names / descriptions -> the pool their values come from (a user's tool)
POOL_HINTS = (("email", "email"), ("city", "city"), ("town", "city"), ("country", "country"),
              ("timezone", "timezone"), ("time zone", "timezone"), ("currency", "currency"), ("date", "date"),
              ("time", "clock"), ("phone", "phone"), ("language", "language"), ("symbol", "symbol"),
              ("ticker", "symbol"), ("url", "url"), ("path", "path"), ("file", "path"), ("order", "order_id"),
              ("name", "person"), ("person", "person"), ("subject", "subject"), ("title", "event"),
              ("query", "query"), ("search", "query"), ("topic", "topic"), ("word", "word"), ("room", "room"),
              ("message", "message"), ("text", "phrase"), ("table", "table"), ("status", "status"))


def fill(template: str, slots: dict[str, str]) -> str:
    """`template` with each `{slot}` it names replaced (other braces, as in JSON, are kept)."""
    return SLOT.sub(lambda m: slots[m.group(1)] if m.group(1) in slots else m.group(0), template)


def slots_of(template: str) -> list[str]:
    return SLOT.findall(template)


def number_text(value: float) -> str:
    """A number as an answer writes it: 420, 31.5, 0.1667 (at most 4 decimals)."""
    rounded = round(float(value), 4)
    return str(int(rounded)) if rounded == int(rounded) else repr(rounded)


class Pools:
    """Named lists of values to draw arguments from. An entry is a value, or [value, how a request
    writes it, ...]; "int:A-B" and "num:A-B" draw numbers, "email" an address."""

    def __init__(self, pools: dict[str, list[Any]]) -> None:
        self.pools = pools

    def draw(self, spec: str | list[Any], rng: random.Random, picked: dict[str, Any] | None = None
             ) -> tuple[Any, str]:
        """(the argument's value, the text a request writes for it). "pool.N" is the N-th value of an
        entry of a pool of pairs, the same entry for every draw that shares `picked`."""
        if isinstance(spec, str) and (part := PAIR.fullmatch(spec)) is not None:
            picked = {} if picked is None else picked
            if part.group(1) not in picked:
                picked[part.group(1)] = rng.choice(self.pools[part.group(1)])
            entry = picked[part.group(1)][int(part.group(2))]
        elif isinstance(spec, list):
            entry = rng.choice(spec)
        elif (numbers := NUMBERS.fullmatch(spec)) is not None:
            low, high = int(numbers.group(2)), int(numbers.group(3))
            if numbers.group(1) == "int":
                value = rng.randint(low, high)
                return value, str(value)
            value = round(rng.uniform(low, high), 2)
            return value, number_text(value)
        elif spec == "email":
            name = rng.choice(self.pools["first_name"])
            address = f"{name}@{rng.choice(self.pools['domain'])}"
            return address, address
        elif spec in self.pools:
            entry = rng.choice(self.pools[spec])
        else:
            raise DataError(f"unknown pool {spec!r}; known: {sorted(self.pools)}, int:A-B, num:A-B, email")
        if isinstance(entry, list):
            return entry[0], str(rng.choice(entry[1:] or entry[:1]))
        return entry, str(entry)


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]  # its JSON schema (type, description, enum, bounds)
    pool: str | list[Any] | None  # None: only requests that give the argument's template use it
    aliases: tuple[str, ...] = ()
    optional: bool = False


@dataclass(frozen=True)
class Request:
    """A request template. `arguments` (templates over its slots) and `values` (slot -> pool) are
    given when the arguments are not simply the parameters named in the text (an expression)."""

    text: str
    arguments: dict[str, Any] | None = None
    values: dict[str, Any] | None = None


@dataclass
class ToolFamily:
    name: str
    description: str
    params: list[Param]
    requests: list[Request]
    answers: list[str] = field(default_factory=list)
    result: str = '{"result": "ok"}'
    fields: dict[str, Any] = field(default_factory=dict)  # result slot -> pool
    key: list[str] = field(default_factory=list)  # the result's slots an answer must state
    cannot: str = ""  # what a request for it asks for, said after "I can't"
    aliases: tuple[str, ...] = ()
    held_out: bool = False
    general: bool = False  # answers general questions (search, facts): no "no tool fits" chat beside it
    fixed_name: bool = False  # always listed under its own name (a built-in tool)
    distinct: tuple[str, ...] = ()  # parameters that must differ (from and to currencies)
    compute: str = ""  # calculate | days: the result is computed from the arguments
    related: tuple[str, ...] = ()  # families that could serve its requests (never "no tool fits" beside it)
    weight: int = 1  # how often, against the others' weights, a training request needs it
    search: str = ""  # the web search that serves its requests, over its slots ("{topic} news")

    def function(self, name: str | None = None, renamed: dict[str, str] | None = None) -> dict[str, Any]:
        """The OpenAI function description, under `name` and with parameters `renamed`."""
        renamed = renamed or {}
        properties = {renamed.get(p.name, p.name): dict(p.schema) for p in self.params}
        required = [renamed.get(p.name, p.name) for p in self.params if not p.optional]
        return {"name": name or self.name, "description": self.description,
                "parameters": {"type": "object", "properties": properties, "required": required,
                               "additionalProperties": False}}

    def draw(self, request: Request, pools: Pools, rng: random.Random) -> tuple[str, dict[str, Any], dict[str, str]]:
        """(the request's text, the call's arguments by parameter in schema order, every slot's text
        for the answer: each argument's as written and `{name}_value` as passed)."""
        if request.arguments is not None:
            drawn = {slot: pools.draw(spec, rng) for slot, spec in (request.values or {}).items()}
            slots = {slot: text for slot, (_, text) in drawn.items()}
            arguments = {p.name: fill(value, slots) if isinstance(value, str) else value for p in self.params
                         if (value := request.arguments.get(p.name, self)) is not self}
            return fill(request.text, slots), arguments, {**slots, **{k: str(v) for k, v in arguments.items()}}
        named = set(slots_of(request.text))
        for _ in range(20):
            picked: dict[str, Any] = {}
            drawn = {p.name: pools.draw(p.pool, rng, picked) for p in self.params if p.name in named}
            if len({str(drawn[n][0]) for n in self.distinct if n in drawn}) == len([n for n in self.distinct
                                                                                    if n in drawn]):
                break
        slots = {name: text for name, (_, text) in drawn.items()}
        slots.update({f"{name}_value": str(value) for name, (value, _) in drawn.items()})
        arguments = {p.name: drawn[p.name][0] for p in self.params if p.name in drawn}
        return fill(request.text, slots), arguments, slots

    def outcome(self, arguments: dict[str, Any], slots: dict[str, str], pools: Pools, rng: random.Random,
                calculate: Callable[[str], Any] | None = None) -> tuple[str, dict[str, str]]:
        """(the tool's result as text, the slots an answer may use, the result's included). A
        `compute: calculate` family's result is `calculate(expression)`, as the agent gives it back:
        the caller passes the calculator (`llmos.apps.builtin_tools.calculate`)."""
        slots = dict(slots)
        for name, spec in self.fields.items():
            slots[name] = pools.draw(spec, rng)[1]
        if self.compute == "calculate":
            if calculate is None:
                raise DataError(f"family {self.name!r} computes its result: give the calculator")
            value = calculate(arguments["expression"])
            return json.dumps(value), {**slots, "result": number_text(value)}
        if self.compute == "days":
            start, end = (datetime.date.fromisoformat(arguments[k]) for k in ("start", "end"))
            slots["result"] = str(abs((end - start).days))
        return fill(self.result, slots), slots


PARAM_KEYS = {"name", "type", "description", "pool", "aliases", "optional", "minimum", "maximum", "enum", "pattern",
              "maxLength"}


def _param(spec: dict[str, Any], where: str) -> Param:
    unknown = set(spec) - PARAM_KEYS
    if unknown or "name" not in spec or "type" not in spec:
        raise DataError(f"{where}: parameter {spec!r} needs a name and a type and takes only {sorted(PARAM_KEYS)}"
                        " (quote a description that holds a comma)")
    schema = {"type": spec["type"]}
    for key in ("pattern", "maxLength", "description", "enum", "minimum", "maximum"):  # function_schema's order
        if key in spec:
            schema[key] = spec[key]
    pool = spec.get("pool", spec.get("enum"))
    return Param(spec["name"], schema, pool, tuple(spec.get("aliases", ())), bool(spec.get("optional")))


def _family(spec: dict[str, Any], where: str) -> ToolFamily:
    where = f"{where}: family {spec.get('name')!r}"
    params = [_param(p, where) for p in spec.get("params", [])]
    requests = [Request(r["text"], r.get("arguments"), r.get("values")) if isinstance(r, dict) else Request(r)
                for r in spec["requests"]]
    weight = spec.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise DataError(f"{where}: weight must be a whole number of at least 1, got {weight!r}")
    family = ToolFamily(spec["name"], spec["description"], params, requests, list(spec.get("answers", [])),
                        spec.get("result", '{"result": "ok"}'), dict(spec.get("fields", {})),
                        list(spec.get("key", [])), spec.get("cannot", ""), tuple(spec.get("aliases", ())),
                        bool(spec.get("held_out")), bool(spec.get("general")), bool(spec.get("fixed_name")),
                        tuple(spec.get("distinct", ())), spec.get("compute", ""), tuple(spec.get("related", ())),
                        weight, spec.get("search", ""))
    required = {p.name for p in params if not p.optional}
    unknown = set(slots_of(family.search)) - required
    if unknown:
        raise DataError(f"{where}: search {family.search!r} names {sorted(unknown)}, which are not among its "
                        f"required parameters {sorted(required)}")
    for request in requests:
        given = set(request.arguments) if request.arguments is not None else set(slots_of(request.text))
        if not required <= given:
            raise DataError(f"{where}: request {request.text!r} leaves out {sorted(required - given)}")
        unpooled = [p.name for p in params if p.pool is None and p.name in given and request.arguments is None]
        if unpooled:
            raise DataError(f"{where}: request {request.text!r} needs a pool for {unpooled}")
    return family


@dataclass
class Catalogue:
    families: list[ToolFamily]
    pools: Pools
    chat: list[str]  # general requests no tool is for

    def family(self, name: str) -> ToolFamily:
        return next(f for f in self.families if f.name == name)


def load_catalogue(path: str | Path = CATALOGUE) -> Catalogue:
    """The synthetic tools of tool_catalogue.yaml (or another file of that shape)."""
    document = parse_yaml(Path(path).read_text(encoding="utf-8"), path, DataError)
    families = [_family(spec, str(path)) for spec in document["families"]]
    return Catalogue(families, Pools(document["pools"]), list(document.get("chat", [])))


def _pool_for(name: str, schema: dict[str, Any]) -> str | list[Any] | None:
    """Where a user's parameter draws values: its enum, its numeric range, or a pool its name or
    description suggests; None when nothing fits (its values then come from the examples only)."""
    if "enum" in schema:
        return list(schema["enum"])
    kind = schema.get("type")
    if kind in ("integer", "number"):
        low = int(schema.get("minimum", 1))
        high = int(schema.get("maximum", max(100, low + 9)))
        return f"{'int' if kind == 'integer' else 'num'}:{low}-{high}"
    if kind == "boolean":
        return [True, False]
    if kind != "string":
        return None
    text = f"{name} {schema.get('description', '')}".lower().replace("_", " ")
    return next((pool for hint, pool in POOL_HINTS if hint in text), None)


def family_for_function(function: dict[str, Any], examples: list[dict[str, Any]] | None = None) -> ToolFamily:
    """A family for a user's tool (an OpenAI function dict). Each example ({"request", "arguments"})
    becomes a template: an argument value written in the request becomes its slot, so new values
    are drawn, when its pool is known; otherwise the example is kept as it is. Without examples,
    requests are written from the description and the parameters' descriptions."""
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    required = set(parameters.get("required", []))
    params, fixed = [], set()
    for name, schema in parameters.get("properties", {}).items():
        pool = _pool_for(name, schema)
        if pool is None:
            fixed.add(name)
        params.append(Param(name, schema, pool if pool is not None else [""], (), name not in required))
    requests = []
    for example in examples or []:
        text, arguments = example["request"], dict(example.get("arguments") or {})
        slotted = text
        for name, value in arguments.items():
            written = str(value)
            if name not in fixed and not isinstance(value, bool) and written and written in slotted:
                slotted = slotted.replace(written, "{" + name + "}", 1)
        # every argument a slot: new values are drawn; otherwise the example is kept as it is
        requests.append(Request(slotted) if set(slots_of(slotted)) >= set(arguments) else Request(text, arguments))
    if not requests:
        summary = function.get("description", "").rstrip(". ") or function["name"].replace("_", " ")
        wanted = [p for p in params if not p.optional and p.name not in fixed]
        detail = ", ".join(f"{p.schema.get('description', p.name.replace('_', ' '))} {{{p.name}}}" for p in wanted)
        for pattern in ("{summary}: {detail}.", "Please {lower}: {detail}.", "I need this: {lower}, {detail}.",
                        "{summary} ({detail})"):
            requests.append(Request(pattern.format(summary=summary, lower=summary[:1].lower() + summary[1:],
                                                   detail=detail).rstrip(": .") + ("." if detail else "")))
    cannot = (function.get("description") or function["name"].replace("_", " ")).rstrip(".")
    return ToolFamily(function["name"], function.get("description", ""), params, requests,
                      answers=["Done: {result}."], result='{"result": "{result}"}', fields={"result": "word"},
                      key=["result"], cannot=cannot[:1].lower() + cannot[1:], fixed_name=True)
