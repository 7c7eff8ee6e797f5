"""Layer 8: `Agent`: a model that calls tools (Python functions, MCP tools) until it can answer.

The agent speaks the server's tool format (`llmos.generation.tool_calls`, the
one module that defines it): the tools are listed for the model as
`/v1/chat/completions` lists them (in the system message, or by a template
that renders tools itself), a call is a `<tool_call>` block decoded under the
grammar, so it always parses and its arguments are valid against that tool's
parameter schema (a function's, from its type hints, or a `Tool`'s own), and
the result goes back as a tool message (a `<tool_response>` block). Each step
is decoded under tool_choice "auto": the model calls a tool, or answers in
text, which ends the run. A call runs with a timeout; its result, or its
error, goes back to the model, and the loop continues until an answer or
`max_steps`. A call the model repeats with the same arguments is not run
again: its known result is given back and the next step must answer
(tool_choice "none"; small models otherwise repeat a call until max_steps).
Every step is appended to a JSONL trace when `trace=` names a file, and handed
to `run(..., on_step=fn)` as it finishes (`llmos agent` prints it). The
history is plain OpenAI-shaped messages, so the same steps run in this
process, behind the server's engine or against a server over HTTP (any
`Generator` of `llmos.generation.service`: the tools travel in its params).
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.apps.tool_schema import Tool, ToolError, function_schema
from llmos.generation.local import as_generator
from llmos.generation.service import GenerationParams
from llmos.generation.tool_calls import read_reply


@dataclass
class AgentResult:
    answer: str | None  # None when max_steps ran out first
    steps: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "answer"  # answer | max_steps


class Agent:
    """`Agent(model, tokenizer, tools=[fn or Tool, ...]).run("task")` -> AgentResult; over a server:
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
        self.system = system  # the tools are listed after it, as the server lists them

    def start(self, task: str) -> list[dict[str, Any]]:
        """The conversation a run starts from (OpenAI's message shape; the tools are listed when
        it is rendered)."""
        return ([{"role": "system", "content": self.system}] if self.system else []) + \
            [{"role": "user", "content": task}]

    def next_action(self, messages: list[dict[str, Any]], require_tool: bool = False,
                    require_answer: bool = False) -> dict[str, Any]:
        """The model's next turn: {"tool", "arguments"} for a call, {"answer"} for text. tool_choice
        is "required" with `require_tool`, "none" with `require_answer`, else "auto"."""
        choice = "none" if require_answer else "required" if require_tool else "auto"
        params = GenerationParams(max_new_tokens=self.max_new_tokens, tools=tuple(self.specs.values()),
                                  tool_choice=choice)
        completion = self.generator.generate([messages], params)[0]
        text, finish = completion.text, completion.finish_reason
        if finish == "length":
            raise ToolError(f"the reply was cut at max_new_tokens={self.max_new_tokens}: {text[:80]!r}")
        content, calls = read_reply(text) if choice != "none" else (text, [])
        if not calls:
            return {"answer": (content or "").strip()}
        function = calls[0]["function"]
        try:
            return {"tool": function["name"], "arguments": json.loads(function["arguments"])}
        except json.JSONDecodeError:
            raise ToolError(f"the call's arguments are not JSON: {function['arguments'][:80]!r}") from None

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
        messages = self.start(task)
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
                messages.append({"role": "user", "content": f"Your reply was cut ({exc}); reply more briefly."})
            record: dict[str, Any] = {"step": step, "action": action}
            if "error" in action:
                pass
            elif "answer" in action:
                result.answer, result.stopped = action["answer"], "answer"
            else:
                call = json.dumps([action["tool"], action["arguments"]], sort_keys=True)
                call_id = f"call_{uuid.uuid4().hex[:24]}"
                messages.append({"role": "assistant", "content": "", "tool_calls": [{
                    "id": call_id, "type": "function",
                    "function": {"name": action["tool"], "arguments": json.dumps(action["arguments"])}}]})
                if call in answered:  # the same call again: its result is known, so the next step answers
                    record.update(result=answered[call], ok=True, repeated=True)
                    output, must_answer = answered[call], True
                else:
                    output, ok = self.call(action["tool"], action["arguments"])
                    record.update(result=output, ok=ok)
                    if ok:
                        answered[call] = output
                messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
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
