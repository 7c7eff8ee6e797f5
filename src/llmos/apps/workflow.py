"""Layer 8: workflows: a YAML file of steps run over each item of a folder, a CSV or a JSONL file.

    model: smollm2                     # default smollm2 (--model overrides)
    inputs: {folder: emails, pattern: "*.txt"}   # or {csv: FILE} / {jsonl: FILE}; none: one run
    steps:
      - name: extract                  # an identifier: later templates read its output by this name
        kind: llm                      # system, prompt, schema | choices, max_new_tokens (default 256)
        prompt: "Read this email: {{ item.text }}"
        schema: {type: object, properties: {...}}    # the reply is decoded under it and parsed
      - name: urgent
        kind: branch                   # if: an expression; then: / else: lists of steps
        if: extract.sentiment == 'negative'
        then: [{name: reply, kind: llm, prompt: "Write a reply to {{ extract.name }}"}]
      - {name: total, kind: tool, tool: calculate, arguments: {expression: "{{ item.n }} * 2"}}
      - {name: helper, kind: agent, task: "...", tools: [calculate], max_steps: 4}
      - name: lines                    # map: sub-steps per element of a list (an expression,
        kind: map                      # or an input source); its output is the list of its
        over: item.text.splitlines()   # last sub-step's outputs; `as` names the element
        as: line
        steps: [{name: kind_of_line, kind: llm, prompt: "{{ line }}", choices: [question, other]}]
    output: {path: results.csv, fields: {name: extract.name, reply: reply}}   # .csv or .jsonl

Templates are jinja2 over `item` (a file: name, path, text; a row or record:
its fields) and the outputs of earlier steps by name; `if`, `over` and output
fields are jinja2 expressions. A step in the branch arm not taken has no
output: it renders as nothing and is false. Paths are relative to the
workflow file. Without output fields, each row holds the item's key and
every step's output (a CSV gives a schema step's fields their own columns).

Why these shapes: the run over `inputs` is the outer map over items, kept at
the top so each item is the unit of resuming; a `map` step maps inside one
item. A branch holds its arms' steps rather than jumping to a named step, so
the steps always run top to bottom and which outputs exist where is known
before running (`workflow_spec` checks every reference). Decoding is greedy,
so a re-run gives the same results.

`run_workflow` runs the items not finished yet (see `workflow_state`) and
stops at the first item that fails, naming it and the step; every item done
before stays in the output and the state file. The model is a `Generator`:
a loaded model gets the continuous-batching engine of its own
(`serving.generator.EngineGenerator`), and up to `Generator.parallel` items
run at once, so their llm steps share the engine's batches (and the prefix
cache: each item's prompt usually begins with the same system turn). Items
are still saved, reported and failed in their order; greedy decoding gives
each the reply it would get alone.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.apps.workflow_inputs import Item, WorkflowError, read_items
from llmos.apps.workflow_spec import (
    AgentStep,
    BranchStep,
    InputSpec,
    LLMStep,
    MapStep,
    Step,
    ToolStep,
    Workflow,
    load_workflow,
    tool_function,
    walk,
)
from llmos.apps.workflow_state import RunState, item_context, output_rows, state_path, write_output
from llmos.apps.workflow_templates import evaluate, render
from llmos.generation.local import as_generator
from llmos.generation.service import GenerationParams, Generator

__all__ = ["load_workflow", "run_workflow", "describe", "WorkflowRunner", "WorkflowError", "RunSummary"]


class StepFailed(Exception):
    """A step raised; `path` says where (`route > reply`, `lines[2] > kind_of_line`)."""

    def __init__(self, path: str, cause: BaseException) -> None:
        super().__init__(f"step {path}: {type(cause).__name__}: {cause}")
        self.path, self.cause = path, cause


class WorkflowRunner:
    """Runs a workflow's steps on one item with one `Generator` (items may run in several threads)."""

    def __init__(self, workflow: Workflow, model: Any = None, tokenizer: Any = None) -> None:
        if workflow.needs_model() and (model is None or tokenizer is None and not isinstance(model, Generator)):
            raise WorkflowError(f"{workflow.path} has llm or agent steps: give a model and its tokenizer, or a "
                                "Generator")
        self.workflow = workflow
        self.generator = as_generator(model, tokenizer) if model is not None else None
        self.names = [step.name for step in walk(workflow.steps)]

    def run_item(self, item: Item) -> dict[str, Any]:
        """Every step's output for `item` (JSON values), by step name."""
        outputs: dict[str, Any] = {}
        self._run(self.workflow.steps, item, {}, outputs, "")
        return outputs

    def _run(self, steps: list[Step], item: Item, bound: dict[str, Any], outputs: dict[str, Any],
             where: str) -> None:
        for step in steps:
            context = {**item_context(item, outputs, self.names), **bound}
            path = f"{where}{step.name}"
            try:
                if isinstance(step, BranchStep):
                    value = bool(evaluate(step.condition, context))
                    self._run(step.then if value else step.otherwise or [], item, bound, outputs, f"{path} > ")
                elif isinstance(step, MapStep):
                    value = []
                    for index, element in enumerate(self._elements(step, context)):
                        inner = dict(outputs)
                        self._run(step.steps, item, {**bound, step.element: element}, inner, f"{path}[{index}] > ")
                        value.append(inner.get(step.steps[-1].name))
                else:
                    value = {LLMStep: self._llm, ToolStep: self._tool, AgentStep: self._agent}[type(step)](step, context)
            except StepFailed:
                raise
            except Exception as exc:  # the run stops here, naming the item (run_workflow) and the step
                raise StepFailed(path, exc) from exc
            outputs[step.name] = json.loads(json.dumps(value, default=str))  # as the state file will hold it

    def _elements(self, step: MapStep, context: dict[str, Any]) -> list[Any]:
        if isinstance(step.over, InputSpec):
            return [element.data for element in read_items(step.over)]
        elements = evaluate(step.over, context)
        if isinstance(elements, (str, dict)) or not hasattr(elements, "__iter__"):
            raise WorkflowError(f"'over: {step.over}' gave a {type(elements).__name__}, not a list")
        return list(elements)

    def _llm(self, step: LLMStep, context: dict[str, Any]) -> Any:
        messages = [{"role": "system", "content": render(step.system, context)}] if step.system else []
        messages.append({"role": "user", "content": render(step.prompt, context)})
        constraint = ({"json_schema": step.schema} if step.schema is not None else
                      {"choices": step.choices} if step.choices is not None else None)
        [reply] = self.generator.generate([messages], GenerationParams(max_new_tokens=step.max_new_tokens,
                                                                       constraint=constraint))
        text = reply.text
        if step.schema is not None:
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise WorkflowError(f"the reply was cut at max_new_tokens={step.max_new_tokens} before its JSON "
                                    f"was complete: {text[:60]!r}...; raise max_new_tokens") from None
        if step.choices is None and reply.cut:
            warnings.warn(f"step {step.name}: the reply may be cut at max_new_tokens={step.max_new_tokens}",
                          stacklevel=2)
        return text.strip()

    def _tool(self, step: ToolStep, context: dict[str, Any]) -> Any:
        from llmos.apps.tool_schema import function_schema

        function = tool_function(step.tool, step.workspace)
        types = {k: v.get("type") for k, v in function_schema(function)["function"]["parameters"]["properties"].items()}
        arguments = {}
        for key, value in step.arguments.items():
            if isinstance(value, str):
                value = render(value, context)
                if types.get(key) not in ("string", None):  # a number, list... written by a template
                    try:
                        value = json.loads(value)
                    except json.JSONDecodeError:
                        raise WorkflowError(f"argument {key!r} must be a {types[key]}; got {value!r}") from None
            arguments[key] = value
        return function(**arguments)

    def _agent(self, step: AgentStep, context: dict[str, Any]) -> str | None:
        from llmos.apps.agent import Agent

        tools = [tool_function(name, step.workspace) for name in step.tools]
        agent = Agent(self.generator, None, tools, max_steps=step.max_steps, max_new_tokens=step.max_new_tokens)
        return agent.run(render(step.task, context)).answer


@dataclass
class RunSummary:
    output: Path
    state: Path
    ran: int  # items run now
    skipped: int  # items finished by an earlier run
    rows: int  # rows in the output file


def pending(workflow: Workflow, limit: int | None = None, restart: bool = False) -> tuple[RunState, list[Item]]:
    """The run's state and the items (of the first `limit`) that still have to run."""
    if limit is not None and limit < 1:
        raise WorkflowError(f"limit={limit} must be at least 1")
    state = RunState(workflow.output.path, workflow.fingerprint, restart)
    items = workflow.items[:limit]
    return state, [item for item in items if state.outputs(item) is None]


ITEMS_AT_ONCE = 8  # items in flight on a workflow's own engine (its batch): the pipelines' measured batch size


def run_workflow(workflow: Workflow, model: Any = None, tokenizer: Any = None, limit: int | None = None,
                 restart: bool = False, progress: Callable[[int, int], None] | None = None,
                 tools_adapter: str | None = None) -> RunSummary:
    """Run the unfinished items (of the first `limit`), saving each as it finishes (see the module docstring).
    `model`: a `Generator`, or a loaded model and its tokenizer (run on an engine of its own; agent
    steps decode through the model's `tools_adapter` when it holds one, see `load_model`)."""
    state, todo = pending(workflow, limit, restart)
    owned = None
    if workflow.needs_model() and model is not None and tokenizer is not None and not isinstance(model, Generator):
        from llmos.serving.generator import EngineGenerator

        model = owned = EngineGenerator.start(model, tokenizer, tools_adapter=tools_adapter, max_batch=ITEMS_AT_ONCE,
                                              max_queue=4 * ITEMS_AT_ONCE)
    try:
        runner = WorkflowRunner(workflow, model, tokenizer)
        return _run_items(workflow, runner, state, todo, limit, progress)
    finally:
        if owned is not None:
            owned.close()


def _run_items(workflow: Workflow, runner: WorkflowRunner, state: RunState, todo: list[Item], limit: int | None,
               progress: Callable[[int, int], None] | None) -> RunSummary:
    names = workflow.output_names()
    total = len(workflow.items[:limit])
    skipped = total - len(todo)
    if progress is not None:
        progress(skipped, total)
    rows = output_rows(workflow.output, workflow.items, state, names)
    write_output(workflow.output, rows)
    width = max(1, min(runner.generator.parallel if runner.generator is not None else 1, len(todo)))
    pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="llmos-workflow")
    try:
        futures = [pool.submit(runner.run_item, item) for item in todo]
        for done, (item, future) in enumerate(zip(todo, futures, strict=True), skipped + 1):
            try:
                outputs = future.result()
            except StepFailed as exc:
                raise WorkflowError(f"item {item.key!r} failed at {exc}; the {len(rows)} item(s) finished before "
                                    f"are kept in {workflow.output.path}, and a re-run resumes after them"
                                    ) from exc.cause
            state.finish(item, outputs)
            rows = output_rows(workflow.output, workflow.items, state, names)
            write_output(workflow.output, rows)
            if progress is not None:
                progress(done, total)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return RunSummary(workflow.output.path, state.path, len(todo), skipped, len(rows))


def describe(workflow: Workflow, limit: int | None = None, restart: bool = False) -> list[str]:
    """The plan of a run, as lines (what `llmos run --dry-run` prints): nothing is loaded or written."""
    state, todo = pending(workflow, limit, restart)
    items = workflow.items[:limit]
    shown = ", ".join(item.key for item in items[:5]) + (", ..." if len(items) > 5 else "")
    lines = [f"workflow: {workflow.path}",
             f"model: {workflow.model}" + ("" if workflow.needs_model() else " (not needed: no llm or agent step)"),
             f"inputs: {workflow.inputs.describe() if workflow.inputs else 'none (one run)'}: "
             f"{len(workflow.items)} item(s) ({shown})", "steps:"]
    lines += _step_lines(workflow.steps, "  ")
    fields = ", ".join(workflow.output.fields or ["item", *workflow.output_names()])
    lines += [f"output: {workflow.output.path} ({workflow.output.format}: {fields})",
              f"state: {state_path(workflow.output.path)}",
              f"would run {len(todo)} item(s); {len(items) - len(todo)} already done"]
    return lines


def _step_lines(steps: list[Step], indent: str) -> list[str]:
    lines = []
    for step in steps:
        if isinstance(step, LLMStep):
            detail = ("schema " + ", ".join((step.schema or {}).get("properties", {})) if step.schema is not None
                      else f"choices {step.choices}" if step.choices else "text")
            lines.append(f"{indent}{step.name}: llm, {detail}, max_new_tokens {step.max_new_tokens}")
        elif isinstance(step, ToolStep):
            lines.append(f"{indent}{step.name}: tool {step.tool}({', '.join(step.arguments)})")
        elif isinstance(step, AgentStep):
            lines.append(f"{indent}{step.name}: agent with {', '.join(step.tools)}, max_steps {step.max_steps}")
        elif isinstance(step, BranchStep):
            lines.append(f"{indent}{step.name}: branch if {step.condition}")
            lines += [f"{indent}  then:", *_step_lines(step.then, indent + "    ")]
            if step.otherwise:
                lines += [f"{indent}  else:", *_step_lines(step.otherwise, indent + "    ")]
        else:
            over = step.over.describe() if isinstance(step.over, InputSpec) else step.over
            lines.append(f"{indent}{step.name}: map over {over} as {step.element}")
            lines += _step_lines(step.steps, indent + "    ")
    return lines
