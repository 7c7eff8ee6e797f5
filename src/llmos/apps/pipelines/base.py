"""Layer 8: what every task pipeline is: a prompt template, decoding defaults, and output parsing.

A task is a small subclass of `Pipeline` that sets, in the open:

- `system` and `template`: jinja2 templates of the chat's system and user turns, rendered
  over the input (`text`, or `question`/`context`...) and the task's options;
- `defaults`: keyword arguments for `model.generate` (GenerationConfig names);
- `options`: the task's own settings and their default values (`max_words`, `tgt_lang`...);
- `constraint(item)`: the grammar the reply is decoded under (JSON schema, choices), if any;
- `parse(reply, item)`: the reply's text -> the result (transformers' shapes where they exist).

Every one of them can be overridden per pipeline (`pipeline(task, template=..., system=...,
max_new_tokens=..., **options)`) or per call (`pipe(text, **options)`), and
`describe()` prints them, so no prompt is hidden.

A pipeline decodes through a `Generator` (`llmos.generation.service`): a model
in this process (`LocalGenerator`: a list of inputs runs in batches of
`batch_size` prompts, left-padded into one `generate` call, each row under its
own constraint), the server's engine (`EngineGenerator`: the task routes, the
studio playground), or a server over HTTP (`RemoteGenerator`). Chat prompts go
to it as messages, rendered by the backend through the model's chat template,
so a task's reply is the same whichever backend decodes it greedily.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from pathlib import Path
from typing import Any, ClassVar

from llmos.apps.workflow_templates import render
from llmos.errors import LLMOSError
from llmos.generation.service import Completion, GenerationParams, Generator
from llmos.tokenizer.from_any import as_tokenizer

DEFAULT_MODEL = "smollm2"
DEFAULT_BATCH_SIZE = 8  # see the package docstring for the measurement behind it


class PipelineError(LLMOSError):
    """A task, option or input a pipeline cannot use; the message says what would be valid."""


Reply = Completion  # one decoded reply: text, token ids, finish reason (`cut`), mean log-probability


def generation_keys() -> set[str]:
    from llmos.generation import GenerationConfig

    return {f.name for f in dataclasses.fields(GenerationConfig)} - {"extra"}


def load_causal_lm(model: str | Path, tokenizer: Any = None) -> tuple[Any, Any]:
    """A `LocalGenerator` over the model a name or path gives (`load_model`), and its tokenizer."""
    from llmos.generation.loading import load_model

    loaded = load_model(model, tokenizer=tokenizer is None)
    if tokenizer is None:
        return loaded.generator(), loaded.tokenizer
    from llmos.generation.local import LocalGenerator

    return LocalGenerator(loaded.model, tokenizer), tokenizer


class Pipeline:
    """`pipe(inputs, **options)`: one input (a string, or a dict of the task's fields) gives one
    result, a list gives a list. See the module docstring; subclasses set the class attributes."""

    task: ClassVar[str]
    summary: ClassVar[str]  # one line for `llmos run --list`
    output: ClassVar[str]  # the result's shape, for `describe`
    system: ClassVar[str | None] = None
    template: ClassVar[str] = "{{ text }}"
    defaults: ClassVar[dict[str, Any]] = {"max_new_tokens": 128, "do_sample": False}
    options: ClassVar[dict[str, Any]] = {}
    fields: ClassVar[tuple[str, ...]] = ("text",)  # what one input holds; the first is what a plain string is
    # transformers' nesting of results: "one" (a result per input), "listed" (one input gives [result]),
    # "nested" (text generation: a list of sequences per input, so a list of inputs gives [[result], ...])
    shape: ClassVar[str] = "one"

    def __init__(self, model: Any, tokenizer: Any, *, template: str | None = None, system: str | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, **settings: Any) -> None:
        """model: a `Generator`, or a loaded model (a causal LM runs through a `LocalGenerator`;
        a sequence classifier is used as it is, by the tasks that take one)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise PipelineError(f"batch_size={batch_size!r} must be an integer >= 1", param="options.batch_size")
        if tokenizer is None and isinstance(model, Generator):
            tokenizer = model.tokenizer
        self.tokenizer = as_tokenizer(tokenizer) if tokenizer is not None else None
        if isinstance(model, Generator):
            self.generator, self.model = model, getattr(model, "model", None)
        elif hasattr(model, "lm_head"):
            from llmos.generation.local import LocalGenerator

            self.generator, self.model = LocalGenerator(model, self.tokenizer), model
        else:
            self.generator, self.model = None, model
        self.batch_size = batch_size
        if template is not None:
            self.template = template
        if system is not None:
            self.system = system or None
        options, generation = self.split_settings(settings)
        self.options = {**type(self).options, **options}  # as given: each call checks them with its own
        self.check_options(self.options)
        self.defaults = {**type(self).defaults, **generation}

    @classmethod
    def load(cls, model: str | Path, tokenizer: Any = None) -> tuple[Any, Any]:
        """The model and tokenizer a model name or path gives this task (a causal LM)."""
        return load_causal_lm(model, tokenizer)

    # ---- the task's parts (overridden by subclasses) -------------------------------------------

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Validate and normalise the options (before any model loads); raise PipelineError naming what
        would be valid."""
        return options

    def variables(self, item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """What the templates see."""
        return {**options, **item}

    def messages(self, item: dict[str, Any], options: dict[str, Any]) -> list[dict[str, str]]:
        context = self.variables(item, options)
        turns = [{"role": "system", "content": render(self.system, context)}] if self.system else []
        return [*turns, {"role": "user", "content": render(self.template, context)}]

    def decoding(self, options: dict[str, Any], generation: dict[str, Any]) -> dict[str, Any]:
        """The keywords for `generate` under these options (summarization sizes its length limit here)."""
        return generation

    def constraint(self, item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any] | None:
        return None

    def parse(self, reply: Reply, item: dict[str, Any], options: dict[str, Any]) -> Any:
        return reply.text.strip()

    def is_single(self, inputs: Any) -> bool:
        """Whether `inputs` is one input (not a list of them)."""
        return not isinstance(inputs, list)

    def wrap(self, results: list[Any], single: bool) -> Any:
        """The results nested as transformers nests this task's (see `shape`)."""
        if self.shape == "nested":
            results = [[r] for r in results]
        if single:
            return [results[0]] if self.shape == "listed" else results[0]
        return results

    def row(self, result: Any) -> dict[str, Any]:
        """One result as the columns of a batch run's output file."""
        if isinstance(result, list) and len(result) == 1 and isinstance(result[0], dict):
            result = result[0]
        return result if isinstance(result, dict) else {self.task: result}

    # ---- running --------------------------------------------------------------------------------

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        named = {k: kwargs.pop(k) for k in self.fields if k in kwargs}
        if inputs is None:
            inputs = named
            named = {}
        single = self.is_single(inputs)
        if not single and not inputs:
            raise PipelineError(f"{self.task}: the list of inputs is empty", param="input")
        batch_size = kwargs.pop("batch_size", self.batch_size)
        options, generation = self.split_settings(kwargs)
        options = self.check_options({**self.options, **options})
        generation = self.decoding(options, {**self.defaults, **generation})
        items = [self.normalize(x, named) for x in ([inputs] if single else inputs)]
        results = []
        for start in range(0, len(items), batch_size):
            results += self.run_batch(items[start:start + batch_size], options, generation)
        return self.wrap(results, single)

    @classmethod
    def normalize(cls, value: Any, named: dict[str, Any] | None = None) -> dict[str, Any]:
        """One input as a dict of the task's fields (`named` adds to each: a QA question); an empty or
        missing field is an error. Needs no model, so a whole file is checked before one loads."""
        item = dict(value) if isinstance(value, dict) else {cls.fields[0]: value}
        if cls.fields[0] not in item and "text" in item:  # a file's `text` column is the main field
            item[cls.fields[0]] = item.pop("text")
        item.update(named or {})
        for name in cls.fields:
            field = item.get(name)
            if field is None:
                raise PipelineError(f"{cls.task}: the input has no {name!r} (it needs {', '.join(cls.fields)}; "
                                    f"got {', '.join(map(repr, item)) or 'nothing'})", param=f"input.{name}")
            if not isinstance(field, str):
                raise PipelineError(f"{cls.task}: the input's {name!r} must be text, not {type(field).__name__}",
                                    param=f"input.{name}")
            if not field.strip():
                raise PipelineError(f"{cls.task}: the input's {name!r} is empty; give some text", param=f"input.{name}")
        return item

    def prompt(self, item: dict[str, Any], options: dict[str, Any]) -> list[dict[str, str]] | list[int]:
        """What the generator decodes for one input: the chat messages (or token ids) of its prompt."""
        return self.messages(item, options)

    def wants_log_probs(self) -> bool:
        """Whether `parse` reads the reply's log-probability (question answering's score)."""
        return False

    def params(self, generation: dict[str, Any], constraint: dict[str, Any] | None) -> GenerationParams:
        """generate()'s keywords (the task's decoding) as a Generator's params; a bad one is a PipelineError."""
        try:
            return GenerationParams.from_generate_kwargs(generation, constraint, self.wants_log_probs())
        except LLMOSError as exc:
            raise PipelineError(f"{self.task}: {exc}", param=f"options.{exc.param}" if exc.param else None) from None

    def run_batch(self, items: list[dict[str, Any]], options: dict[str, Any],
                  generation: dict[str, Any]) -> list[Any]:
        prompts = [self.prompt(item, options) for item in items]
        constraints = [self.constraint(item, options) for item in items]
        replies = self.generate(prompts, constraints, generation)
        return [self.parse(reply, item, options) for reply, item in zip(replies, items, strict=True)]

    def generate(self, prompts: list[list[dict[str, str]]] | list[list[int]],
                 constraints: list[dict[str, Any] | None], generation: dict[str, Any]) -> list[Completion]:
        """Decode the prompts through the generator, each under its own constraint."""
        if self.generator is None:
            raise PipelineError(f"{self.task} decodes text: it needs a causal language model, not a "
                                f"{type(self.model).__name__}", param="model")
        return self.generator.generate(prompts, [self.params(generation, c) for c in constraints])

    # ---- documentation --------------------------------------------------------------------------

    @classmethod
    def describe(cls) -> str:
        """The task's templates, defaults, options and output, as `llmos run TASK --show-template` prints."""
        lines = [f"{cls.task}: {cls.summary}", inspect.getdoc(cls) or "", "",
                 f"input: {', '.join(cls.fields)}", f"output: {cls.output}",
                 f"options: {_pairs(cls.options) or '(none)'}", f"decoding defaults: {_pairs(cls.defaults)}"]
        if cls.system:
            lines += ["system template:", textwrap.indent(cls.system, "    ")]
        lines += ["user template:", textwrap.indent(cls.template, "    ")]
        return "\n".join(lines)

    @classmethod
    def split_settings(cls, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(task options, generation keywords); anything else is an error naming both lists."""
        known = generation_keys()
        unknown = sorted(k for k in settings if k not in cls.options and k not in known)
        if unknown:
            raise PipelineError(f"{cls.task}: unknown option {unknown[0]!r}; its options are "
                                f"{', '.join(cls.options) or '(none)'}, and generate's keywords (max_new_tokens, "
                                "do_sample, temperature, ...)", param=f"options.{unknown[0]}")
        return ({k: v for k, v in settings.items() if k in cls.options},
                {k: v for k, v in settings.items() if k not in cls.options})


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items())
