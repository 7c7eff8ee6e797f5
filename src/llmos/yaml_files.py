"""Layer 0: a YAML document (a recipe, a workflow) parsed, or one line saying where its syntax breaks.

PyYAML's messages span several lines and name `"<unicode string>"` instead of
the file; the CLI prints one line, so the problem and its line and column are
put into one sentence that names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmos.errors import LLMOSError


def yaml_syntax_message(source: str | Path, exc: yaml.YAMLError) -> str:
    """`exc` as one line naming `source`: the problem, where it is, and what was being read."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or problem is None:
        return f"{source}: not valid YAML: {' '.join(str(exc).split())}"
    message = f"{source}: not valid YAML: {problem} at line {mark.line + 1}, column {mark.column + 1}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        message += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    return message


def parse_yaml(text: str, source: str | Path, error: type[LLMOSError] = LLMOSError) -> Any:
    """The document in `text` (read from `source`); a syntax error raises `error` with one line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(yaml_syntax_message(source, exc)) from None
