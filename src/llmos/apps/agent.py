"""Layer 8: `Agent`: a model that calls tools (Python functions, MCP tools) until it can answer.

Each step the model writes one action, decoded under a grammar so it always
parses: `{"tool": NAME, "arguments": {...}}` (the arguments valid against that
tool's parameter schema: a function's, from its type hints, or a `Tool`'s own)
or `{"answer": "..."}`. A call runs with a timeout; its result, or its error,
goes back to the model as the next message, and the loop continues until an
answer or `max_steps`. A call the model repeats with the same arguments is not
run again: its known result is given back and the next step must answer
(small models otherwise repeat a call until max_steps). Every step is appended to a JSONL trace when `trace=`
names a file, and handed to `run(..., on_step=fn)` as it finishes (`llmos agent` prints it). The format needs no tool support in the chat template: it is
plain messages, so any chat model can drive it. The model is a `Generator`
(`llmos.generation.service`): one in this process, the server's engine, or a
server over HTTP (`RemoteGenerator`); the action is decoded greedily under
its JSON schema whichever it is.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.apps.tool_schema import Tool, ToolError, function_schema
from llmos.generation.local import as_generator
from llmos.generation.service import GenerationParams

INSTRUCTIONS = """You can call these tools:
{tools}
To call a tool, reply with JSON only, for example {{"tool": "{first}", "arguments": {{...}}}}.
When you know the answer, reply {{"answer": "..."}}."""


@dataclass
class AgentResult:
    answer: str | None  # None when max_steps ran out first
    steps: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "answer"  # answer | max_steps


class Agent:
    """`Agent(model, tokenizer, tools=[fn or Tool, ...]).run("task")` -> AgentResult; `model` may be a
    `Generator` (then no tokenizer), e.g. over a server:
    `Agent(RemoteGenerator("http://127.0.0.1:8000/v1"), None, tools=[...])`."""

    def __init__(self, model: Any, tokenizer: Any, tools: list[Callable[..., Any] | Tool], max_steps: int = 6,
                 tool_timeout: float = 30.0, trace: str | Path | None = None, max_new_tokens: int = 256,
                 system: str | None = None) -> None:
        if max_steps < 1:
            raise ToolError(f"max_steps={max_steps} must be at least 1")
        if not tools:
            raise ToolError("an Agent needs at least one tool")
        self.generator = as_generator(model, tokenizer)
        specs = [function_schema(tool)["function"] for tool in tools]
        self.tools = {spec["name"]: tool for spec, tool in zip(specs, tools, strict=True)}
        if len(self.tools) != len(tools):
            raise ToolError(f"tool names must be unique; got {[spec['name'] for spec in specs]}")
        self.specs = {spec["name"]: spec for spec in specs}
        self.max_steps, self.tool_timeout, self.max_new_tokens = max_steps, tool_timeout, max_new_tokens
        self.trace = Path(trace) if trace is not None else None
        listing = "\n".join(json.dumps(spec) for spec in specs)
        self.system = (system + "\n\n" if system else "") + INSTRUCTIONS.format(tools=listing, first=specs[0]["name"])

    def action_schema(self, require_tool: bool = False, require_answer: bool = False) -> dict[str, Any]:
        calls = [{"type": "object", "properties": {"tool": {"const": name}, "arguments": spec["parameters"]},
                  "required": ["tool", "arguments"], "additionalProperties": False}
                 for name, spec in self.specs.items()]
        answer = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
                  "additionalProperties": False}
        if require_answer:
            return answer
        return {"anyOf": calls if require_tool else [*calls, answer]}

    def next_action(self, messages: list[dict[str, str]], require_tool: bool = False,
                    require_answer: bool = False) -> dict[str, Any]:
        schema = self.action_schema(require_tool, require_answer)
        params = GenerationParams(max_new_tokens=self.max_new_tokens, constraint={"json_schema": schema})
        text = self.generator.generate([messages], params)[0].text
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ToolError(f"the action was cut at max_new_tokens={self.max_new_tokens}: {text[:80]!r}") from None

    def call(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """(result text, ok): the tool's result, or its error / timeout as text for the model."""
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            result = pool.submit(self.tools[name], **arguments).result(timeout=self.tool_timeout)
            return (result if isinstance(result, str) else json.dumps(result, default=str)), True
        except concurrent.futures.TimeoutError:
            return f"error: {name} did not finish within {self.tool_timeout} s", False
        except Exception as exc:  # the model reads the error and may try again
            return f"error: {type(exc).__name__}: {exc}", False
        finally:
            pool.shutdown(wait=False)

    def run(self, task: str, require_tool_first: bool = False,
            on_step: Callable[[dict[str, Any]], None] | None = None) -> AgentResult:
        """Loop until an answer or max_steps; `on_step(record)` sees each step's record as it ends."""
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": task}]
        result = AgentResult(answer=None, stopped="max_steps")
        answered: dict[str, str] = {}  # call (name + arguments) -> its successful result
        must_answer = False
        for step in range(1, self.max_steps + 1):
            started = time.perf_counter()
            try:
                action = self.next_action(messages, require_tool=require_tool_first and step == 1,
                                          require_answer=must_answer)
            except ToolError as exc:  # a reply cut by the token limit: say so and let it try again
                action = {"error": str(exc)}
                messages.append({"role": "user", "content": f"Your reply was cut ({exc}); reply with shorter JSON."})
            record: dict[str, Any] = {"step": step, "action": action}
            if "error" in action:
                pass
            elif "answer" in action:
                result.answer, result.stopped = action["answer"], "answer"
            else:
                call = json.dumps([action["tool"], action["arguments"]], sort_keys=True)
                messages.append({"role": "assistant", "content": json.dumps(action)})
                if call in answered:  # the same call again: its result is known, so the next step answers
                    record.update(result=answered[call], ok=True, repeated=True)
                    messages.append({"role": "user", "content": f"You already called {action['tool']} with these "
                                     f"arguments; it returned: {answered[call]}. Now give the answer."})
                    must_answer = True
                else:
                    output, ok = self.call(action["tool"], action["arguments"])
                    record.update(result=output, ok=ok)
                    if ok:
                        answered[call] = output
                    messages.append({"role": "user", "content": f"Tool {action['tool']} returned: {output}"})
            record["seconds"] = round(time.perf_counter() - started, 3)
            result.steps.append(record)
            if self.trace is not None:
                self.trace.parent.mkdir(parents=True, exist_ok=True)
                with self.trace.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(record, default=str) + "\n")
            if on_step is not None:
                on_step(record)
            if result.answer is not None:
                break
        return result
