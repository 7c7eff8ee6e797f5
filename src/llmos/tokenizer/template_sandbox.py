"""Layer 3 (formats): the bounded Jinja sandbox that chat templates from model files run in.

A chat template is a program that comes with a model, so it runs in jinja2's
ImmutableSandboxedEnvironment (no Python internals, no changes to its data)
with limits on what one render may cost, each checked *before* the cost is paid
and refused with one `TemplateLimitError`:
- text written (output, and what macros and blocks buffer): `MAX_OUTPUT_CHARS`;
- values: no string or list of more than `MAX_VALUE_SIZE` characters or items
  is built by `*`, `+`, `~`, `%`, `str.format` or a call or filter with a size
  argument (`'x' * 10**9` is refused, not allocated); integers of at most
  `MAX_INT_BITS` bits from `*` and `**`; every other call's result is measured;
- work: `MAX_STEPS` steps (a loop iteration, a call, a filter, an operator), and
  `MAX_SECONDS` of wall-clock time, read every `CLOCK_EVERY` steps.
The counting lives in the generated code (`BoundedCodeGenerator`: every loop's
iterable is counted, every `~` and every output goes through the environment)
and in the sandbox's own hooks (`call`, `call_binop`, the filters), with the
render's budget in a context variable, so one compiled template serves every
thread. A real template (SmolLM2's, Qwen2's with tools) takes a few hundred
steps and renders identically.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmos.errors import LLMOSError

MAX_OUTPUT_CHARS = 4 * 1024 * 1024  # characters one render may write (a prompt of ~1M tokens)
MAX_VALUE_SIZE = MAX_OUTPUT_CHARS  # characters of a string, or items of a list, a template may build
MAX_INT_BITS = 4096  # integers from `*` and `**` (a 1,233-digit number)
MAX_STEPS = 1_000_000  # loop iterations, calls, filters and operators in one render
MAX_SECONDS = 5.0  # wall-clock time of one render
CLOCK_EVERY = 256  # steps between two readings of the clock
SIZED = (str, list, tuple, dict, set, frozenset)


class ChatTemplateError(LLMOSError):
    """A chat template is missing, malformed, or rejected the conversation."""


class TemplateLimitError(ChatTemplateError):
    """A chat template went past one of the sandbox's limits (size, steps, time)."""


@dataclass
class RenderBudget:
    """What one render has used; the hooks below charge it."""

    steps: int = 0
    written: int = 0
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)
    next_check: int = CLOCK_EVERY  # the step count at which to check the step limit and the clock again

    def step(self) -> None:
        self.steps += 1
        if self.steps >= self.next_check:
            self.check()

    def check(self) -> None:
        if self.steps > MAX_STEPS:
            raise TemplateLimitError(f"it took more than {MAX_STEPS:,} steps (loop iterations, calls, operators)")
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"it ran for more than {MAX_SECONDS:g} s")
        self.next_check = min(self.steps + CLOCK_EVERY, MAX_STEPS + 1)

    def write(self, size: int) -> None:
        self.written += size
        if self.written > MAX_OUTPUT_CHARS:
            raise TemplateLimitError(f"it wrote more than {MAX_OUTPUT_CHARS:,} characters")


_BUDGET: ContextVar[RenderBudget | None] = ContextVar("llmos_template_budget", default=None)


def render_bounded(template: jinja2.Template, context: dict[str, Any]) -> str:
    """`template.render(**context)` with a fresh budget (a render without one has only its sizes checked)."""
    token = _BUDGET.set(RenderBudget())
    try:
        return template.render(**context)
    finally:
        _BUDGET.reset(token)


def _step() -> None:
    budget = _BUDGET.get()
    if budget is not None:  # budget.step(), inlined: this runs for every operator and call
        budget.steps += 1
        if budget.steps >= budget.next_check:
            budget.check()


# ---- sizes, measured or foreseen ---------------------------------------------------------------

def text_size(value: Any, cap: int = MAX_VALUE_SIZE) -> int:
    """About len(str(value)), counted without building the string; stops once past `cap`."""
    if isinstance(value, str):
        return len(value)
    total, pending = 0, [value]
    while pending and total <= cap:
        item = pending.pop()
        if isinstance(item, str):
            total += len(item) + 4  # quotes and a separator, inside a container
        elif isinstance(item, dict):
            total += 2 + 2 * len(item)
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + len(item)
            pending.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 2
        else:
            total += 24  # a float, None, a bool, an undefined value
    return total


def check_size(size: int, what: str) -> None:
    if size > MAX_VALUE_SIZE:
        raise TemplateLimitError(f"{what} would hold {size:,} characters or items; the limit is {MAX_VALUE_SIZE:,}")


def _checked(value: Any, what: str) -> Any:
    """A value just built (by `what`), refused when it is too big to keep."""
    if isinstance(value, SIZED):
        if len(value) > MAX_VALUE_SIZE:
            check_size(len(value), f"the result of {what}")
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError(f"the result of {what} is an integer of {value.bit_length():,} bits; the limit "
                                 f"is {MAX_INT_BITS:,}")
    return value


def _check_int_arguments(args: Iterable[Any], what: str) -> None:
    """A width, a count or an indent past the value size limit would build a value past it."""
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_VALUE_SIZE:
            raise TemplateLimitError(f"{what} was given {arg:,}; sizes are limited to {MAX_VALUE_SIZE:,}")


_NUMBERS = re.compile(r"\d+")
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\d*)(?:\.(\d*))?")


def _format_size(template: str, args: tuple, kwargs: dict) -> int:
    """An upper estimate of `template.format(*args, **kwargs)`'s length."""
    values = [*args, *kwargs.values()]
    widest = max((text_size(v) for v in values), default=0)
    largest = max((abs(v) for v in values if isinstance(v, int) and not isinstance(v, bool)), default=0)
    total = 0
    for literal, name, spec, _ in Formatter().parse(template):
        total += len(literal)
        if name is not None:
            widths = [int(n) for n in _NUMBERS.findall(spec or "")]
            total += widest + max(widths, default=0) + (largest if "{" in (spec or "") else 0)
    return total


def _percent_size(template: str, values: Any) -> int:
    """An upper estimate of `template % values`'s length."""
    given = values if isinstance(values, tuple) else (values,)
    _check_int_arguments(given, "'%' formatting")  # a '*' width
    specs = _PERCENT_SPEC.findall(template)
    widths = sum(int(width or 0) + int(precision or 0) for width, precision in specs)
    return len(template) + widths + len(specs) * max((text_size(v) for v in given), default=0)


def _joined_size(items: list, separator: str) -> int:
    return sum(text_size(i) for i in items) + max(len(items) - 1, 0) * len(separator)


def _replaced_size(text: str, old: str, new: str, count: int = -1) -> int:
    found = text.count(old) if old else len(text) + 1
    found = found if count is None or count < 0 else min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _str_method_size(method: Any, args: tuple, kwargs: dict) -> int | None:
    """The foreseen length of a str method's result, for the methods that can make a string much longer."""
    text, name = method.__self__, method.__name__
    if name == "join" and args:
        return _joined_size(list(args[0]), text)
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        return _replaced_size(text, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count", -1))
    if name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        return len(text) + text.count("\t") * max(size, 0) if isinstance(size, int) else None
    if name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        return len(text) * max(longest, 1)
    return None


# ---- the environment ---------------------------------------------------------------------------

class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with every loop's iterable counted and every `~` and output measured."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        counted = nodes.Call(nodes.EnvironmentAttribute("counted"), [node.iter], [], None, None)
        node.iter = counted.set_lineno(node.lineno).set_environment(self.environment)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # what jinja writes (`str_join((a, b, ))`), with the parts measured before they are joined
        self.write("(markup_join if context.eval_ctx.volatile else str_join)" if frame.eval_ctx.volatile else
                   "markup_join" if frame.eval_ctx.autoescape else "str_join")
        self.write("(environment.concat_parts((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        return f"environment.written({super()._output_const_repr(group)})"

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape or finalize.src is not None:
            self.write("environment.written(")  # around jinja's own escape(...)
            super()._output_child_pre(node, frame, finalize)
            self.write("environment.writable(")
        else:  # plain text, as chat templates are: one call instead of three
            self.write("environment.written_text(")

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write(")")
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape or finalize.src is not None:
            super()._output_child_post(node, frame, finalize)
            self.write(")")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox with the limits of this module (see the module docstring)."""

    code_generator_class = BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "+", "%", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def add_filter(self, name: str, function: Callable[..., Any]) -> None:
        """Register a filter with the same bounds as the built-in ones."""
        self.filters[name] = _bounded_filter(name, function)

    # -- called by the generated code --
    def counted(self, iterable: Any) -> Iterator[Any]:
        budget = _BUDGET.get()
        if budget is None:
            yield from iterable
            return
        for item in iterable:
            budget.steps += 1
            if budget.steps >= budget.next_check:
                budget.check()
            yield item

    def concat_parts(self, parts: tuple) -> tuple:
        _step()
        check_size(sum(text_size(p) for p in parts), "a '~' concatenation")
        return parts

    def written(self, text: str) -> str:
        budget = _BUDGET.get()
        if budget is not None:
            budget.write(len(text))
        return text

    def writable(self, value: Any) -> Any:
        if not isinstance(value, str):
            check_size(text_size(value), "a value written out")
        return value

    def written_text(self, value: Any) -> str:
        """`written(str(writable(value)))` in one call."""
        if type(value) is not str:
            check_size(text_size(value), "a value written out")
            value = str(value)
        budget = _BUDGET.get()
        if budget is not None:
            budget.write(len(value))
        return value

    # -- the sandbox's hooks --
    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        budget = _BUDGET.get()
        if budget is not None:  # budget.step(), inlined: chat templates use many operators
            budget.steps += 1
            if budget.steps >= budget.next_check:
                budget.check()
        if operator == "+" and type(left) is str and type(right) is str:  # chat templates' usual operator
            if len(left) + len(right) > MAX_VALUE_SIZE:
                check_size(len(left) + len(right), "a '+' concatenation")
            return left + right
        what = f"'{operator}'"
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                    check_size(len(seq) * max(times, 0), "a '*' repetition")
            if isinstance(left, int) and isinstance(right, int):
                _check_bits(left.bit_length() + right.bit_length(), what)
        elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            check_size(len(left) + len(right), "a '+' concatenation")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _check_bits(int(right * math.log2(abs(left))), what)
        elif operator == "%" and isinstance(left, str):
            check_size(_percent_size(left, right), "a '%' formatting")
        return _checked(self.binop_table[operator](left, right), what)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _step()
        if isinstance(getattr(__obj, "__self__", None), str):  # center, ljust, zfill, expandtabs, replace, join...
            _check_int_arguments([*args, *kwargs.values()], f"str.{__obj.__name__}()")
            if __obj.__name__ == "join" and args:
                args = (list(args[0]), *args[1:])  # a generator is read once: measure the list
            foreseen = _str_method_size(__obj, args, kwargs)
            if foreseen is not None:
                check_size(foreseen, f"str.{__obj.__name__}()")
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, SIZED) and len(result) > MAX_VALUE_SIZE or isinstance(result, int):
            _checked(result, f"{getattr(__obj, '__name__', 'a call')}()")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        template = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if value.__name__ == "format_map" and args else kwargs
            check_size(_format_size(template, args if mapping is kwargs else (), dict(mapping)), "str.format()")
            return wrapper(*args, **kwargs)

        return bounded


def _check_bits(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        raise TemplateLimitError(f"{what} would make an integer of about {bits:,} bits; the limit is {MAX_INT_BITS:,}")


_FILTER_SIZES: dict[str, Callable[..., int | None]] = {
    "join": lambda value, d="", attribute=None: _joined_size(list(value), str(d)) if attribute is None else None,
    "replace": lambda s, old, new, count=None: _replaced_size(str(s), str(old), str(new), count),
    "indent": lambda s, width=4, first=False, blank=False: len(str(s)) + (str(s).count("\n") + 1) * (
        width if isinstance(width, int) else len(str(width))),
    "center": lambda value, width=80: max(len(str(value)), width),
    "format": lambda value, *args, **kwargs: _percent_size(str(value), kwargs or args),
    "wordwrap": lambda s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True: (
        len(str(s)) + (len(str(s)) // max(width, 1) + str(s).count("\n") + 1) * len(wrapstring or "\n")),
}


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` as a filter that counts a step, foresees the size of what it builds, and measures it.
    It takes the context, so jinja never runs it while compiling (a constant `'x'|center(10**9)`)."""
    passes = getattr(getattr(function, "jinja_pass_arg", None), "name", None)
    foresee = _FILTER_SIZES.get(name)
    what = f"the {name} filter"

    @jinja2.pass_context
    def bounded(context: jinja2.runtime.Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        if args or kwargs:
            _check_int_arguments([*args, *kwargs.values()], what)
        if foresee is not None:
            if name == "join" and not isinstance(value, SIZED):
                value = list(value)  # a generator (from map or select) is read once
            try:
                size = foresee(value, *args, **kwargs)
            except (TypeError, ValueError):  # arguments the filter itself will refuse
                size = None
            if size is not None:
                check_size(size, what)
        if passes is None:
            result = function(value, *args, **kwargs)
        else:
            first = context if passes == "context" else context.eval_ctx if passes == "eval_context" else \
                context.environment
            result = function(first, value, *args, **kwargs)
        return _checked(result, what)

    return bounded
