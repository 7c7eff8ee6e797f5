"""Layer 8: `teach_tools(config)`: teach a model to use tools, by LoRA on conversations made for them.

Given tool definitions (a JSON file of OpenAI tools, or a Python module whose
typed functions `function_schema` describes) and optional example requests,
the run (1) makes a `ToolFamily` of each tool and, by default, mixes in the
synthetic catalogue (`llmos.data.tool_catalogue`), (2) has the base model
answer the general requests itself (greedy, no tools: those answers are its
chat, trained back so it does not change; where no tools are listed the
adapter learns the base model's whole distribution over them, `"distill"`),
(3) generates the training conversations and the held-out test items
(`llmos.data.tool_conversations`, rendered as the server and the agent render
them), (4) measures the base model on the held-out items, (5) trains a LoRA
adapter with the fine-tuning machinery (PEFT format), and (6) measures the
tuned model on the same items and prints both: decisions under tool_choice
"auto" (which tool, or none), exact arguments, answers read from a tool's
result, on new phrasings of the trained tools and on tools training never saw
(`llmos.apps.tool_eval`).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import random
import re
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.apps.builtin_tools import calculate
from llmos.apps.teach_tools_recipe import TeachToolsConfig
from llmos.apps.tool_eval import evaluate_tool_use, summarise, tool_report
from llmos.apps.tool_schema import Tool, ToolError, function_schema
from llmos.data.jsonl import jsonl_records
from llmos.data.tool_catalogue import Pools, ToolFamily, family_for_function, load_catalogue
from llmos.data.tool_conversations import ToolData, ToolDataSpec
from llmos.generation.local import as_generator
from llmos.generation.service import GenerationParams
from llmos.training.finetune_recipe import FinetuneConfig

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a function name as the server takes it
SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


@dataclass
class TeachToolsResult:
    adapter: Path | None  # the trained adapter (PEFT format), None when nothing was trained
    before: dict[str, dict[str, float]] | None
    after: dict[str, dict[str, float]] | None
    train_seconds: float = 0.0
    chat_kept: tuple[int, int] | None = None  # (plain-chat replies unchanged, asked)
    lines: list[str] = field(default_factory=list)


def load_tools(source: str) -> list[dict[str, Any]]:
    """Function dicts from a JSON file (a list of OpenAI tools or functions, or {"tools": [...]})
    or a Python module (a .py file or a dotted name): its `TOOLS` list if it has one, else every
    public function defined in it, described from its type hints and docstring."""
    path = Path(source)
    if path.suffix == ".json":
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ToolError(f"tools file {source!r} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ToolError(f"{source}: not valid JSON: {exc}") from None
        entries = document.get("tools") if isinstance(document, dict) else document
        if not isinstance(entries, list) or not entries:
            raise ToolError(f"{source}: expected a list of tools (or {{\"tools\": [...]}})")
        functions = [entry.get("function", entry) if isinstance(entry, dict) else entry for entry in entries]
    else:
        functions = [function_schema(fn)["function"] for fn in _module_tools(source)]
    for i, function in enumerate(functions):
        if not isinstance(function, dict) or not NAME.match(str(function.get("name", ""))):
            raise ToolError(f"{source}: tool {i} needs a name of letters, digits, _ or - (at most 64); got "
                            f"{function.get('name') if isinstance(function, dict) else function!r}")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if parameters.get("type") != "object" or not isinstance(parameters.get("properties", {}), dict):
            raise ToolError(f"{source}: tool {function['name']!r} needs parameters of type object")
    names = [f["name"] for f in functions]
    if len(set(names)) != len(names):
        raise ToolError(f"{source}: tool names must be unique; got {names}")
    return functions


def _module_tools(source: str) -> list[Any]:
    path = Path(source)
    try:
        if path.suffix == ".py":
            if not path.is_file():
                raise ToolError(f"tools module {source!r} does not exist")
            spec = importlib.util.spec_from_file_location(f"llmos_user_tools_{zlib.crc32(source.encode())}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # typing.get_type_hints looks the module up
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(source)
    except ModuleNotFoundError:
        raise ToolError(f"tools {source!r}: no such module; give a .json or .py file, or a module name") from None
    tools = getattr(module, "TOOLS", None)
    if tools is None:
        tools = [obj for name, obj in vars(module).items() if inspect.isfunction(obj) and not name.startswith("_")
                 and obj.__module__ == module.__name__]
    if not tools or not all(callable(t) or isinstance(t, Tool) for t in tools):
        raise ToolError(f"tools module {source!r} defines no public functions (or TOOLS lists something else)")
    return list(tools)


def load_examples(path: str, functions: list[dict[str, Any]]) -> tuple[dict[str, list[dict]], list[str]]:
    """({tool name: its examples}, requests no tool is for) from a JSONL file of
    {"request", "tool" (null when none fits), "arguments"}."""
    by_tool: dict[str, list[dict]] = {f["name"]: [] for f in functions}
    general = []
    for line, record in jsonl_records(path):
        where = f"{path}:{line}"
        if not isinstance(record, dict) or not isinstance(record.get("request"), str) or not record["request"]:
            raise ToolError(f"{where}: each line needs a non-empty 'request' string")
        tool = record.get("tool")
        if tool is None:
            general.append(record["request"])
        elif tool not in by_tool:
            raise ToolError(f"{where}: tool {tool!r} is not one of the tools {sorted(by_tool)}")
        elif not isinstance(record.get("arguments", {}), dict):
            raise ToolError(f"{where}: 'arguments' must be an object")
        else:
            by_tool[tool].append(record)
    return by_tool, general


def chat_answers(model: Any, tokenizer: Any, questions: list[str], max_new_tokens: int = 96,
                 batch_size: int = 8) -> dict[str, str]:
    """The model's own greedy replies (no tools). A reply cut by the limit ends at its last full
    sentence (dropped when it has none), so training never teaches a cut-off reply."""
    generator = as_generator(model, tokenizer)
    answers = {}
    for start in range(0, len(questions), batch_size):
        batch = questions[start:start + batch_size]
        done = generator.generate([[{"role": "user", "content": q}] for q in batch],
                                  GenerationParams(max_new_tokens=max_new_tokens))
        for question, completion in zip(batch, done, strict=True):
            text = completion.text.strip()
            if completion.cut:
                cuts = [m.end() for m in SENTENCE_END.finditer(text)]
                text = text[:cuts[-1]] if cuts else ""
            if text:
                answers[question] = text
    return answers


def families_to_teach(config: TeachToolsConfig) -> tuple[list[ToolFamily], Pools, list[str]]:
    """The user's tools (with their examples) and, by default, the catalogue's; its pools and the
    general requests."""
    catalogue = load_catalogue()
    families = list(catalogue.families) if config.catalogue else []
    chat = list(catalogue.chat) if config.catalogue else []
    if config.tools:
        functions = load_tools(config.tools)
        examples, general = load_examples(config.examples, functions) if config.examples else ({}, [])
        chat += general
        own = [family_for_function(f, examples.get(f["name"])) for f in functions]
        if config.held_out_tools > 0 and len(own) >= 4:
            rng = random.Random(config.seed)
            for family in rng.sample(own, max(1, round(len(own) * config.held_out_tools))):
                family.held_out = True
        taken = {f.name for f in own}
        families = own + [f for f in families if f.name not in taken]
    elif config.examples:
        raise ToolError("examples need their tools: give --tools FILE too")
    return families, catalogue.pools, chat


def _finetune_config(config: TeachToolsConfig, data: Path) -> FinetuneConfig:
    names = {f.name for f in dataclasses.fields(FinetuneConfig)}
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k in names}
    return FinetuneConfig(**{**fields, "data": str(data), "task": "chat", "method": "lora"})


def teach_tools(config: TeachToolsConfig, report: Any = print) -> TeachToolsResult:
    """Generate, measure, train, measure again (see the module docstring)."""
    from llmos.generation.loading import load_model
    from llmos.training.finetune import check_base_depth, finetune

    check_base_depth(config)
    families, pools, chat = families_to_teach(config)
    spec = ToolDataSpec(seed=config.seed, conversations=config.conversations, max_tools=config.max_tools,
                        held_out_phrasings=config.held_out_phrasings, calls=config.calls, cannot=config.cannot,
                        contrast=config.contrast, related_beside_calls=config.related_beside_calls,
                        served=config.served)
    data = ToolData(families, pools, chat, spec, calculate)
    out = Path(config.out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    config.save_yaml(out / "teach-tools.yaml")
    loaded = load_model(config.base_model, quantize="none")
    base, tokenizer = loaded.model, loaded.tokenizer
    started = time.perf_counter()
    answers = chat_answers(base, tokenizer, data.train_chat) if config.chat_answers else {}
    report(f"{len(data.trained)} tools to train on, {len(data.new)} held out; {len(answers)} general requests "
           f"answered by the base model ({time.perf_counter() - started:.0f} s)")
    records = data.training_records(answers)
    items = data.test_items(config.test_items) if config.evaluate else []
    _write_jsonl(out / "data" / "train.jsonl", records)
    _write_jsonl(out / "data" / "test.jsonl", items)
    result = TeachToolsResult(adapter=None, before=None, after=None)
    if items:
        report(f"measuring the base model on {len(items)} held-out items ...")
        result.before = summarise(items, evaluate_tool_use(base, tokenizer, items))
    base_replies = chat_answers(base, tokenizer, data.test_chat) if config.evaluate and data.test_chat else {}
    del base
    report(f"training on {len(records)} conversations ({out / 'data' / 'train.jsonl'})")
    trained = finetune(_finetune_config(config, out / "data" / "train.jsonl"), report=report)
    result.train_seconds = trained.seconds
    result.adapter = trained.run_dir / "last" if trained.run_dir is not None else None
    if result.adapter is not None and items:
        tuned = load_model(config.base_model, quantize="none", adapter=result.adapter, tokenizer=False).model
        result.after = summarise(items, evaluate_tool_use(tuned, tokenizer, items))
        tuned_replies = chat_answers(tuned, tokenizer, list(base_replies))
        result.chat_kept = (sum(tuned_replies.get(q) == a for q, a in base_replies.items()), len(base_replies))
    result.lines = _summary_lines(result, trained.steps)
    for line in result.lines:
        report(line)
    return result


def _summary_lines(result: TeachToolsResult, steps: int) -> list[str]:
    lines = [f"trained {steps} steps in {result.train_seconds / 60:.1f} minutes"]
    if result.after is not None:
        lines += ["held-out items, base -> tuned (greedy; tool_choice auto):", *tool_report(result.before, result.after)]
    if result.chat_kept is not None:
        lines.append(f"plain chat (no tools) unchanged: {result.chat_kept[0]} of {result.chat_kept[1]} held-out "
                     "general requests get the base model's reply")
    if result.adapter is not None:
        lines.append(f"LoRA adapter (PEFT format): {result.adapter}; try it: llmos agent {result.adapter} "
                     "'What is 17 * 23?' --tools calculate")
    return lines


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
