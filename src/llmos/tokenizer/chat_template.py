"""Layer 3 (formats): render Hugging Face chat templates with jinja2.

Chat templates on the Hub are Jinja programs written against the environment
transformers builds, so we build the same one: a sandboxed, immutable
environment with trim_blocks/lstrip_blocks, the loop-control extension, a
`{% generation %}` block, a `tojson` that does not HTML-escape,
`raise_exception`, `strftime_now` and guarded `dict`/`namespace`. Messages are
reduced to plain JSON data first (keys whose value is None are dropped), so
the same conversation renders to the same string here and in transformers.

A template comes with a model file, so it is untrusted: it renders in
`template_sandbox.BoundedSandbox`, whose limits (output, value sizes, steps,
time) are listed there; here, a template has at most `MAX_TEMPLATE_CHARS`
characters and `strftime_now` a format of at most `MAX_FORMAT_CHARS`. Anything
past a limit, or any error inside the template, is one `ChatTemplateError`
line naming the template.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmos.tokenizer.template_sandbox import (
    BoundedSandbox,
    ChatTemplateError,
    TemplateLimitError,
    render_bounded,
)

__all__ = ["CHATML_TEMPLATE", "ChatTemplateError", "TemplateLimitError", "compile_chat_template", "render_chat",
           "select_template", "template_reads"]

MAX_TEMPLATE_CHARS = 1 << 20  # characters of a template (the Hub's longest are a few tens of thousands)
MAX_FORMAT_CHARS = 256  # characters of a strftime_now format ("%d %B %Y" is 8)
MAX_MESSAGE_CHARS = 500  # characters of a template's own error message that an error repeats

# The default template of tokenizers trained by LLMOS (ChatML, as in Qwen2 and SmolLM).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Names a message's reasoning travels under; templates read `reasoning_content` (or `thinking`).
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


class _GenerationBlock(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` marks assistant text; rendering passes it through."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller: Any) -> str:
        return caller()


class _SafeDict:
    """`dict(...)` for templates without exposing the dict type itself."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
        return dict.fromkeys(*args, **kwargs)


class _SafeNamespace(jinja2.utils.Namespace):
    """A jinja namespace that refuses underscore attributes (no route to CPython internals)."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # noqa: N805 - same trick as jinja's Namespace
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _SafeNamespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _SafeNamespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"chat templates cannot store underscore attributes on a namespace, got {name!r}"
            )


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    if len(str(indent)) > 16 or isinstance(indent, int) and indent > 16:
        raise TemplateLimitError(f"tojson's indent is limited to 16 spaces (or a 16-character string), got {indent!r:.40}")
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(format: str) -> str:  # noqa: A002 - the name templates call it with
    if len(str(format)) > MAX_FORMAT_CHARS:
        raise TemplateLimitError(f"strftime_now's format has {len(str(format)):,} characters; the limit is "
                                 f"{MAX_FORMAT_CHARS}")
    return datetime.now().strftime(format)


@lru_cache(maxsize=32)
def compile_chat_template(template: str) -> jinja2.Template:
    """Compile once per template string, in the transformers-compatible sandbox with limits."""
    if len(template) > MAX_TEMPLATE_CHARS:
        raise TemplateLimitError(
            f"chat template {template_label(template)} is refused: it has more than {MAX_TEMPLATE_CHARS:,} characters"
        )
    env = BoundedSandbox(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.add_filter("tojson", _tojson)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _SafeDict()
    env.globals["namespace"] = _SafeNamespace
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ChatTemplateError(
            f"chat template does not compile: {exc.message} (line {exc.lineno})"
        ) from None
    except RecursionError:
        raise ChatTemplateError(
            f"chat template {template_label(template)} does not compile: it nests deeper than the compiler goes"
        ) from None


def template_label(template: str) -> str:
    """A template named in one line: its start, and its length when that is cut."""
    start = template[:48]
    return repr(start) if len(template) <= 48 else f"{start!r}... ({len(template):,} characters)"


@lru_cache(maxsize=32)
def template_reads(template: str, name: str) -> bool:
    """Whether a template uses the variable `name` (e.g. "tools": it renders tool definitions itself)."""
    import jinja2.meta

    env = ImmutableSandboxedEnvironment(extensions=[_GenerationBlock, jinja2.ext.loopcontrols])
    try:
        return name in jinja2.meta.find_undeclared_variables(env.parse(template))
    except jinja2.TemplateSyntaxError:
        return False


def _plain(value: Any) -> Any:
    """Rebuild template inputs from plain JSON types so the sandbox sees nothing else."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _plain(value.item())
    if callable(getattr(value, "model_dump", None)):  # pydantic messages (e.g. the OpenAI SDK's)
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """Messages as plain dicts, None-valued keys dropped, reasoning copied under the names templates read."""
    normalized = []
    for message in _plain(list(messages)):
        if not isinstance(message, dict):
            raise ChatTemplateError(
                f"chat messages must be dicts with 'role' and 'content', got {message!r}"
            )
        message = {k: v for k, v in message.items() if v is not None}
        reasoning = next(
            (message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None
        )
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        normalized.append(message)
    return normalized


def select_template(
    own: str | dict[str, str] | None, requested: str | None, tools: list | None
) -> str:
    """Pick the template string: an explicit one, a named one, `tool_use` when tools are given, or `default`."""
    if isinstance(own, dict):
        if requested is not None:
            return own.get(requested, requested)
        if tools is not None and "tool_use" in own:
            return own["tool_use"]
        if "default" in own:
            return own["default"]
        raise ChatTemplateError(
            f"this tokenizer has several chat templates {sorted(own)} and none is named 'default'; "
            "pass chat_template=<name>"
        )
    if requested is not None:
        return requested
    if own is None:
        raise ChatTemplateError(
            "this tokenizer has no chat template; pass chat_template=<jinja string> "
            "or set tokenizer.chat_template"
        )
    return own


def render_chat(
    template: str,
    messages: Any,
    *,
    add_generation_prompt: bool = False,
    tools: list[dict] | None = None,
    documents: list[dict] | None = None,
    **variables: Any,
) -> str:
    """Render one conversation; a template's raise_exception becomes a ChatTemplateError with its message."""
    if tools is not None:
        for tool in tools:
            if not isinstance(tool, dict):
                raise ChatTemplateError(
                    f"tools must be JSON-schema dicts ({{'type': 'function', 'function': {{...}}}}), got {tool!r}"
                )
    compiled = compile_chat_template(template)
    context = {"messages": normalize_messages(messages), "tools": _plain(tools), "documents": _plain(documents),
               "add_generation_prompt": add_generation_prompt, **_plain(variables)}
    try:
        return render_bounded(compiled, context)
    except TemplateLimitError as exc:
        raise TemplateLimitError(f"chat template {template_label(template)} is refused: {exc}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise ChatTemplateError(f"chat template tried an unsafe operation: {_cut(str(exc))}") from None
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"chat template rejected the conversation: {_cut(exc.message or '')}") from None
    except MemoryError:
        raise TemplateLimitError(f"chat template {template_label(template)} is refused: it ran out of memory") from None
    except RecursionError:
        raise ChatTemplateError(
            f"chat template {template_label(template)} failed: it nests calls deeper than Python allows"
        ) from None
    except Exception as exc:  # the template's own bug (1 + 'a', 10.0 ** 1000): the model's file, not ours
        raise ChatTemplateError(
            f"chat template {template_label(template)} failed: {type(exc).__name__}: {_cut(str(exc))}"
        ) from None


def _cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "..."
