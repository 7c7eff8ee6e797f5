"""Layer 8: the jinja2 templates and expressions of a workflow: rendering, and the names they use.

One sandboxed environment with strict undefined values: a template can read
its context (`item`, earlier steps' outputs) but not change it or reach
Python internals, and a name or field that is not there is an error, never
an empty string. `references` reads a template's syntax tree, so a workflow
that names an unknown step output fails before anything runs.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


class TemplateProblem(ValueError):
    """A template or expression that does not parse; the message is jinja2's, with the line."""


@functools.lru_cache(maxsize=256)
def _template(source: str) -> jinja2.Template:
    return ENV.from_string(source)


@functools.lru_cache(maxsize=256)
def _expression(source: str):
    return ENV.compile_expression(source, undefined_to_none=False)


def not_run(name: str) -> jinja2.Undefined:
    """The value of a step that did not run (the other arm of a branch): it renders as nothing, is false
    in a condition, and any field of it is the same (so `reply.subject` is empty, not an error)."""
    return jinja2.ChainableUndefined(name=name)


def plain(value: Any) -> Any:
    """`value` with a step that did not run read as None (for output cells)."""
    return None if isinstance(value, jinja2.Undefined) else value


def render(source: str, context: dict[str, Any]) -> str:
    return _template(source).render(context)


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    return _expression(expression)(**context)


def references(source: str, expression: bool = False) -> tuple[set[str], set[tuple[str, str]]]:
    """(names the template reads from its context, (name, field) pairs it reads as `name.field` or
    `name["field"]`); raises TemplateProblem when it does not parse."""
    try:
        tree = ENV.parse(f"{{{{ ({source}) }}}}" if expression else source)
        if expression:
            ENV.compile_expression(source)  # the wrapped form accepts some things the bare one does not
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"{exc.message} (line {exc.lineno})") from None
    names = meta.find_undeclared_variables(tree) - set(ENV.globals)
    fields = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not isinstance(node.node, nodes.Name) or node.node.name not in names:
            continue
        if isinstance(node, nodes.Getattr):
            fields.add((node.node.name, node.attr))
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            fields.add((node.node.name, node.arg.value))
    return names, fields
