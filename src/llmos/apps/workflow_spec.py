"""Layer 8: a workflow file read into typed dataclasses, and checked whole before anything runs.

`load_workflow(path)` parses the YAML, builds one dataclass per step (the YAML
keys are the dataclass fields, so an unknown or mistyped key is an error that
lists the valid ones), and validates: unique step names, known step kinds and
tools, JSON schemas the grammar engine compiles, inputs that exist, and every
template and expression reading only `item` and the outputs of steps before
it (with the fields those outputs have, when a schema or the inputs say).
Each failure is one `WorkflowError` naming the step, the value and what is
valid. The format is described in `llmos.apps.workflow`.

A workflow file may come from elsewhere, so it is read within limits before
anything is built from it: at most `MAX_WORKFLOW_BYTES`, parsed by libyaml
(which stops at 1,000 nested levels), then at most `MAX_NESTING` levels and
`MAX_VALUES` values counted through YAML aliases (a "billion laughs" file is a
few hundred bytes). Its inputs have their own limits (`workflow_inputs`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from llmos.apps.workflow_inputs import (
    INPUT_KINDS,
    InputSpec,
    Item,
    WorkflowError,
    item_fields,
    read_items,
)
from llmos.apps.workflow_templates import ENV, TemplateProblem, references
from llmos.yaml_files import yaml_syntax_message

BUILTIN_TOOLS = ("calculate", "current_time", "read_file", "list_files", "write_file")
FILE_TOOLS = ("read_file", "list_files", "write_file")
OUTPUT_FORMATS = (".jsonl", ".csv")
TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "a mapping"}
MAX_WORKFLOW_BYTES = 1 << 20  # a workflow file (the examples have 2 KB)
MAX_NESTING = 64  # levels of lists and mappings (a map in a branch in a map is about 12)
MAX_VALUES = 1_000_000  # values in the file, aliases counted each time they are used
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 15x faster, and bounds its nesting
RESERVED = {"item", "loop", "self", "caller", "varargs", "kwargs", "true", "false", "none", "True", "False", "None",
            *ENV.globals}


def _option(types: type | tuple[type, ...], default: Any = MISSING, key: str | None = None) -> Any:
    """A step field: the YAML value's accepted types, its default (none: required) and its YAML key."""
    metadata = {"types": types, "key": key}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(kw_only=True)
class LLMStep:
    kind: ClassVar[str] = "llm"
    name: str = _option(str)
    prompt: str = _option(str)
    system: str | None = _option(str, None)
    schema: dict | None = _option(dict, None)
    choices: list | None = _option(list, None)
    max_new_tokens: int = _option(int, 256)


@dataclass(kw_only=True)
class ToolStep:
    kind: ClassVar[str] = "tool"
    name: str = _option(str)
    tool: str = _option(str)
    arguments: dict = _option(dict, {})
    workspace: Path | None = _option(str, None)


@dataclass(kw_only=True)
class AgentStep:
    kind: ClassVar[str] = "agent"
    name: str = _option(str)
    task: str = _option(str)
    tools: list = _option(list)
    workspace: Path | None = _option(str, None)
    max_steps: int = _option(int, 6)
    max_new_tokens: int = _option(int, 256)


@dataclass(kw_only=True)
class BranchStep:
    kind: ClassVar[str] = "branch"
    name: str = _option(str)
    condition: str = _option(str, key="if")
    then: list = _option(list)
    otherwise: list = _option(list, None, key="else")


@dataclass(kw_only=True)
class MapStep:
    kind: ClassVar[str] = "map"
    name: str = _option(str)
    over: str | InputSpec = _option((str, dict))
    element: str = _option(str, "element", key="as")
    steps: list = _option(list)


Step = LLMStep | ToolStep | AgentStep | BranchStep | MapStep
STEP_KINDS: dict[str, type] = {cls.kind: cls for cls in (LLMStep, ToolStep, AgentStep, BranchStep, MapStep)}


@dataclass
class OutputSpec:
    path: Path
    fields: dict[str, str] | None = None  # column -> expression; None: the item's key and every top-level output

    @property
    def format(self) -> str:
        return self.path.suffix.lower().lstrip(".")


@dataclass
class Workflow:
    path: Path
    model: str
    inputs: InputSpec | None
    steps: list[Step]
    output: OutputSpec
    items: list[Item]
    fingerprint: str  # what finished items' outputs depend on: the model and the steps as written

    def needs_model(self) -> bool:
        return any(isinstance(s, (LLMStep, AgentStep)) for s in walk(self.steps))

    def output_names(self) -> list[str]:
        """The step outputs visible after the last step (top-level steps and branch arms', not map bodies')."""
        return _visible(self.steps)


def _visible(steps: list[Step]) -> list[str]:
    names = []
    for step in steps:
        if isinstance(step, BranchStep):
            names += _visible(step.then) + _visible(step.otherwise or [])
        names.append(step.name)
    return names


def walk(steps: list[Step]):
    """Every step, nested ones (branch arms, map bodies) included, in order."""
    for step in steps:
        yield step
        if isinstance(step, BranchStep):
            yield from walk(step.then + (step.otherwise or []))
        elif isinstance(step, MapStep):
            yield from walk(step.steps)


def load_workflow(path: str | Path, model: str | None = None, output: str | Path | None = None) -> Workflow:
    """Read and validate the workflow file `path`; `model` and `output` override the file's."""
    path = Path(path)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise WorkflowError(f"{str(path)!r} is not a workflow file; expected a .yaml or .yml file")
    if not path.is_file():
        raise WorkflowError(f"workflow file {str(path)!r} does not exist")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise WorkflowError(f"{path}: expected a mapping with model, inputs, steps and output")
    unknown = set(raw) - {"name", "description", "model", "inputs", "steps", "output"}
    if unknown:
        raise WorkflowError(f"{path}: unknown key(s) {sorted(unknown)}; valid: name, description, model, inputs, "
                            "steps, output")
    base = path.parent
    inputs = _input_spec(raw["inputs"], base, "inputs") if raw.get("inputs") is not None else None
    if not isinstance(raw.get("steps"), list) or not raw["steps"]:
        raise WorkflowError(f"{path}: 'steps' must be a non-empty list of steps")
    steps = [_step(s, base, f"steps[{i}]") for i, s in enumerate(raw["steps"])]
    given = model or str(raw.get("model") or "smollm2")
    fingerprint = hashlib.sha256(json.dumps([given, raw["steps"]], sort_keys=True, default=str).encode())
    # a name (smollm2), or a checkpoint / GGUF path relative to the workflow file (--model: to the shell's folder)
    model = str(base / given) if model is None and (base / given).exists() else given
    workflow = Workflow(path, model, inputs, steps, _output_spec(raw.get("output") or {}, base, output),
                        read_items(inputs) if inputs else [Item("run", "", {})], fingerprint.hexdigest()[:16])
    _validate(workflow)
    return workflow


def read_yaml(path: Path) -> Any:
    """The parsed workflow file, within the limits of the module docstring."""
    with path.open("rb") as f:
        data = f.read(MAX_WORKFLOW_BYTES + 1)
    if len(data) > MAX_WORKFLOW_BYTES:
        raise WorkflowError(f"{path}: the file has {path.stat().st_size:,} bytes; a workflow file has at most "
                            f"{MAX_WORKFLOW_BYTES:,} (1 MiB)")
    try:
        raw = yaml.load(data.decode("utf-8"), Loader=YAML_LOADER)  # noqa: S506 - a safe loader
    except UnicodeDecodeError as exc:
        raise WorkflowError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise WorkflowError(yaml_syntax_message(path, exc)) from None
    except RecursionError:  # the pure-Python loader, where libyaml is missing
        raise WorkflowError(f"{path}: nests more than {MAX_NESTING} levels of lists and mappings") from None
    values, pending = 0, [(raw, 1)]
    while pending:  # iterative: the tree may be deep, or hold itself through an alias
        value, depth = pending.pop()
        values += 1
        if values > MAX_VALUES:
            raise WorkflowError(f"{path}: holds more than {MAX_VALUES:,} values (counting each use of a YAML alias)")
        if isinstance(value, (dict, list)):
            if depth > MAX_NESTING:
                raise WorkflowError(f"{path}: nests more than {MAX_NESTING} levels of lists and mappings")
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)
    return raw


def _input_spec(raw: Any, base: Path, where: str) -> InputSpec:
    if not isinstance(raw, dict) or len(set(raw) & set(INPUT_KINDS)) != 1 or set(raw) - {*INPUT_KINDS, "pattern"}:
        raise WorkflowError(f"{where}: expected one of {{folder: DIR, pattern: GLOB}}, {{csv: FILE}} or "
                            f"{{jsonl: FILE}}; got {raw!r}")
    kind = next(k for k in INPUT_KINDS if k in raw)
    if "pattern" in raw and kind != "folder":
        raise WorkflowError(f"{where}: 'pattern' applies to a folder, not a {kind} file")
    return InputSpec(kind, base / str(raw[kind]), str(raw.get("pattern", "*")))


def _step(raw: Any, base: Path, where: str) -> Step:
    if not isinstance(raw, dict) or "kind" not in raw:
        raise WorkflowError(f"{where}: a step is a mapping with 'name' and 'kind'; got {raw!r}")
    cls = STEP_KINDS.get(raw["kind"])
    if cls is None:
        raise WorkflowError(f"{where} ({raw.get('name', '?')}): unknown kind {raw['kind']!r}; valid: "
                            f"{', '.join(STEP_KINDS)}")
    where = f"step {raw['name']!r}" if isinstance(raw.get("name"), str) else where
    by_key = {f.metadata["key"] or f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(by_key) - {"kind"}
    if unknown:
        raise WorkflowError(f"{where}: unknown key(s) {sorted(unknown)} for kind {cls.kind}; valid: "
                            f"{', '.join(by_key)}")
    values = {}
    for key, f in by_key.items():
        if key not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                raise WorkflowError(f"{where}: kind {cls.kind} needs '{key}'")
            continue
        value = raw[key]
        types = f.metadata["types"]
        if not isinstance(value, types) or (isinstance(value, bool) and types is int):
            names = " or ".join(TYPE_NAMES[t] for t in (types if isinstance(types, tuple) else (types,)))
            raise WorkflowError(f"{where}: '{key}' must be {names}; got {value!r}")
        if f.name in ("then", "otherwise", "steps"):
            value = [_step(s, base, f"{where}.{key}[{i}]") for i, s in enumerate(value)]
        elif f.name == "workspace":
            value = base / value
        elif f.name == "over" and isinstance(value, dict):
            value = _input_spec(value, base, f"{where}: over")
        values[f.name] = value
    return cls(**values)


def _output_spec(raw: Any, base: Path, override: str | Path | None) -> OutputSpec:
    if not isinstance(raw, dict) or set(raw) - {"path", "fields"}:
        raise WorkflowError(f"output: expected {{path: FILE.jsonl or FILE.csv, fields: ...}}; got {raw!r}")
    path = Path(override) if override is not None else base / str(raw.get("path", "results.jsonl"))
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise WorkflowError(f"output {str(path)!r}: write .jsonl or .csv")
    fields = raw.get("fields")
    if isinstance(fields, list) and all(isinstance(f, str) for f in fields):
        fields = {f: f for f in fields}
    if fields is not None and not (isinstance(fields, dict) and fields and
                                   all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())):
        raise WorkflowError(f"output.fields: expected a list of expressions or a mapping column: expression; "
                            f"got {fields!r}")
    return OutputSpec(path, fields)


# ---- validation ------------------------------------------------------------------------------------------------

Scope = dict[str, "set[str] | None"]  # name a template may read -> its known fields (None: not known)


def _validate(workflow: Workflow) -> None:
    names = [s.name for s in walk(workflow.steps)] + [s.element for s in walk(workflow.steps) if isinstance(s, MapStep)]
    for name in names:
        if not re.fullmatch(r"[A-Za-z_]\w*", name) or name in RESERVED:
            raise WorkflowError(f"step or element name {name!r} must be an identifier (letters, digits, _), "
                                f"not one of {sorted(RESERVED)}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise WorkflowError(f"name(s) {duplicates} are used more than once; each step (and map element) needs "
                            "its own name")
    fields = item_fields(workflow.inputs, workflow.items) if workflow.inputs else set()
    scope = _check_steps(workflow.steps, {"item": fields})
    for column, expression in (workflow.output.fields or {}).items():
        _check_template(expression, scope, f"output.fields {column!r}", expression=True)


def _check_steps(steps: list[Step], scope: Scope) -> Scope:
    """Check each step against what is known before it; return the scope after the steps."""
    scope = dict(scope)
    for step in steps:
        where = f"step {step.name!r}"
        if isinstance(step, LLMStep):
            _check_llm(step, scope, where)
            properties = (step.schema or {}).get("properties")
            scope[step.name] = set(properties) if isinstance(properties, dict) else None
        elif isinstance(step, ToolStep):
            parameters = _tool_parameters(step.tool, step.workspace, where)
            unknown = set(step.arguments) - set(parameters["properties"])
            missing = set(parameters.get("required", [])) - set(step.arguments)
            if unknown or missing:
                raise WorkflowError(f"{where}: tool {step.tool} takes arguments {sorted(parameters['properties'])} "
                                    f"(required {parameters.get('required', [])}); got {sorted(step.arguments)}")
            for key, value in step.arguments.items():
                if isinstance(value, str):
                    _check_template(value, scope, f"{where} argument {key!r}")
            scope[step.name] = None
        elif isinstance(step, AgentStep):
            if not step.tools:
                raise WorkflowError(f"{where}: 'tools' must name at least one of {', '.join(BUILTIN_TOOLS)}")
            for tool in step.tools:
                _tool_parameters(tool, step.workspace, where)
            _check_template(step.task, scope, f"{where} task")
            scope[step.name] = None
        elif isinstance(step, BranchStep):
            _check_template(step.condition, scope, f"{where} if", expression=True)
            after = {**_check_steps(step.then, scope), **_check_steps(step.otherwise or [], scope)}
            scope = {**after, step.name: None}
        else:
            if isinstance(step.over, InputSpec):
                read = read_items(step.over)
                element = item_fields(step.over, read)
            else:
                _check_template(step.over, scope, f"{where} over", expression=True)
                element = None
            if not step.steps:
                raise WorkflowError(f"{where}: a map needs at least one step under 'steps'")
            _check_steps(step.steps, {**scope, step.element: element})
            scope[step.name] = None
    return scope


def _check_llm(step: LLMStep, scope: Scope, where: str) -> None:
    from llmos.generation.constrained import ConstraintError, grammar_for

    if step.schema is not None and step.choices is not None:
        raise WorkflowError(f"{where}: give 'schema' or 'choices', not both")
    if step.max_new_tokens < 1:
        raise WorkflowError(f"{where}: max_new_tokens={step.max_new_tokens} must be at least 1")
    try:
        grammar_for(json_schema=step.schema, choices=step.choices)
    except ConstraintError as exc:
        raise WorkflowError(f"{where}: {'schema' if step.schema is not None else 'choices'}: {exc}") from None
    _check_template(step.prompt, scope, f"{where} prompt")
    if step.system is not None:
        _check_template(step.system, scope, f"{where} system")


def tool_function(name: str, workspace: Path | None):
    """The built-in tool `name` (file tools confined to `workspace`)."""
    from llmos.apps.builtin_tools import Workspace, calculate, current_time

    if name not in BUILTIN_TOOLS:
        raise WorkflowError(f"unknown tool {name!r}; valid: {', '.join(BUILTIN_TOOLS)}")
    if name in FILE_TOOLS:
        if workspace is None:
            raise WorkflowError(f"tool {name} works on files: give 'workspace: DIR', the one folder it may use")
        return getattr(Workspace(workspace), name)
    return {"calculate": calculate, "current_time": current_time}[name]


def _tool_parameters(name: str, workspace: Path | None, where: str) -> dict[str, Any]:
    from llmos.apps.tool_schema import function_schema

    try:
        return function_schema(tool_function(name, workspace))["function"]["parameters"]
    except WorkflowError as exc:
        raise WorkflowError(f"{where}: {exc}") from None


def _check_template(source: str, scope: Scope, where: str, expression: bool = False) -> None:
    try:
        names, fields = references(source, expression)
    except TemplateProblem as exc:
        raise WorkflowError(f"{where}: {'expression' if expression else 'template'} {source!r} does not parse: "
                            f"{exc}") from None
    known = ", ".join(scope)
    for name in sorted(names - set(scope)):
        raise WorkflowError(f"{where} refers to {name!r}, which is not an earlier step's output; known here: {known}")
    for name, attr in sorted(fields):
        if scope[name] is not None and attr not in scope[name]:
            raise WorkflowError(f"{where} refers to {name}.{attr}, but {name} has the fields "
                                f"{', '.join(sorted(scope[name])) or '(none)'}")
