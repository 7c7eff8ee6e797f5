"""Layer 7: the grammar a chat reply must follow (response_format, tools), checked before queueing.

Every schema a request carries is compiled and given a dry first step on its own
(`check_servable`), so one the grammar engine cannot serve is a 400 naming its field
(`response_format.json_schema.schema`, `tools[2].function.parameters`) before the request
takes a slot, never a 500 or an empty "JSON" reply mid-decode. Tools are checked even when
tool_choice leaves them out: a schema is valid or not whatever the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmos.generation.constrained import (
    ConstraintError,
    GrammarProcessor,
    check_servable,
    grammar_for,
)
from llmos.generation.tool_calls import closed_arguments, tool_grammar
from llmos.serving.errors import APIError
from llmos.serving.schemas import ChatCompletionRequest


def reply_constraint(state, body: ChatCompletionRequest) -> tuple[Callable[[int], Any] | None, str | None]:
    """(a factory of per-choice grammar processors, the field the grammar comes from), or
    (None, None) for free text. A schema the engine cannot compile or serve is a 400 naming it."""
    schema, mode = body.output_schema, body.tool_mode
    if schema is None and not body.tools:
        return None, None
    tokenizer = state.tokenizer
    eos_ids, vocab = tokenizer.stop_ids[:1], state.engine.config.vocab_size  # a finished grammar ends with the model's EOS

    def checked(field: str, code: str, **constraint: Any) -> str:
        try:
            grammar = grammar_for(**constraint)
            check_servable(grammar, tokenizer.tokenizer, vocab, eos_ids)
        except ConstraintError as exc:
            raise APIError(400, f"Invalid schema for '{field}': {exc}", param=field, code=code) from None
        return grammar

    format_field = "response_format.json_schema.schema" if body.response_format and \
        body.response_format.get("type") == "json_schema" else "response_format"
    format_grammar = None if schema is None else checked(format_field, "invalid_response_format",
                                                          json_schema=schema)
    for i, tool in enumerate(body.tools or []):
        checked(f"tools[{i}].function.parameters", "invalid_tools",
                json_schema=closed_arguments(tool.function.parameters))
    if mode == "none":
        if format_grammar is None:
            return None, None
        grammar, field = format_grammar, format_field
    else:
        lark = tool_grammar(body.callable_tools, mode == "auto", body.parallel_tool_calls is True, schema)
        grammar, field = checked("tools", "invalid_tools", grammar=lark), "tools"

    def make(prompt_length: int) -> GrammarProcessor:
        return GrammarProcessor(grammar, tokenizer.tokenizer, 1, prompt_length, vocab, eos_ids)

    return make, field
