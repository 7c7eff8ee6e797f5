"""Layer 5: the one tool-call format: the prompt, the grammar, and reading calls back.

The server (`/v1/chat/completions` with `tools`), the Agent and the training
data of `llmos teach-tools` all use this module, so a model is prompted,
constrained and read the same way everywhere. One call format is used for
every model, the one Hermes and Qwen2.5 models were trained on, and it is
always enforced by the grammar engine:

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

Several calls follow one another, separated by a newline, when the request
sets parallel_tool_calls to true; by default a reply holds one call (as in
llama.cpp's server: small models otherwise repeat the same call until the
token limit).
The arguments are JSON that validates against the function's parameter
schema; an object that does not say `additionalProperties` gets no properties
beyond those it describes (OpenAI's strict mode), since small models otherwise
go on inventing parameters; a string argument without its own maxLength gets
`DEFAULT_MAX_STRING_LENGTH` characters (`bound_strings`), so a call always ends. With tool_choice "auto" the first character decides: "<" starts a
call, anything else is a text reply (so an "auto" reply cannot begin with
"<"); "required" and a named function allow calls only; "none" lists no tools
and parses no calls.

A chat template that reads `tools` (Qwen2.5, Llama 3.1, ...) renders the tools
and the history itself. Other templates (SmolLM2's, plain ChatML) get the
default format: the tools listed in the system message (`DEFAULT_TOOL_PROMPT`),
earlier calls written back as `<tool_call>` blocks in the assistant's turn,
and tool results as a user turn of `<tool_response>` blocks.
`template_messages` picks between the two for whoever renders a chat.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llmos.generation.constrained import JSON_STYLE, bound_strings
from llmos.tokenizer.chat_template import select_template, template_reads

CALL_OPEN, CALL_CLOSE = "<tool_call>\n", "\n</tool_call>"
_HEADER = re.compile(r'<tool_call>\n\{"name": "((?:[^"\\]|\\.)*)", "arguments": ')
_END = "}" + CALL_CLOSE  # closes the arguments' enclosing object; no raw newline occurs inside the JSON

DEFAULT_TOOL_PROMPT = """You can call functions. Their descriptions, as JSON, are inside <tools></tools>:
<tools>
{tools}
</tools>
To call a function, reply with only:
<tool_call>
{{"name": "<function name>", "arguments": {{<arguments as JSON>}}}}
</tool_call>
The result comes back inside <tool_response></tool_response>. If no function is needed, answer in text."""


def tool_grammar(tools: list[dict[str, Any]], text_allowed: bool, parallel: bool,
                 text_schema: dict[str, Any] | None = None) -> str:
    """A Lark grammar for the reply: calls of `tools` (function dicts), and when `text_allowed`
    (tool_choice "auto") alternatively text, or JSON of `text_schema` when response_format asks."""
    shapes = [{"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
               "properties": {"name": {"const": t["name"]}, "arguments": closed_arguments(t.get("parameters"))}}
              for t in tools]
    schema = {"anyOf": bound_strings(shapes), "x-guidance": JSON_STYLE}
    call = f'"<tool_call>\\n" %json {json.dumps(schema)} "\\n</tool_call>"'
    calls = 'call ("\\n" call)*' if parallel else "call"
    if not text_allowed:
        return f"start: {calls}\ncall: {call}\n"
    text = (f"%json {json.dumps({**bound_strings(text_schema), 'x-guidance': JSON_STYLE})}" if text_schema is not None
            else "/[^<](.|\\n)*/")
    return f"start: text | calls\ntext: {text}\ncalls: {calls}\ncall: {call}\n"


def closed_arguments(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """The arguments' schema, with no properties beyond those described unless it says otherwise
    (as OpenAI's strict mode): small models otherwise go on inventing parameters."""
    if not parameters:
        return {"type": "object", "properties": {}, "additionalProperties": False}
    return {"additionalProperties": False, **parameters} if "properties" in parameters else parameters


def call_block(call: dict[str, Any]) -> str:
    """One call as the model writes it: `call` in OpenAI's shape ({"function": {"name", "arguments"}},
    arguments a JSON string or a dict) or plain {"name", "arguments"}."""
    function = call.get("function", call)
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass  # written back as the string it was
    return CALL_OPEN + json.dumps({"name": function.get("name"), "arguments": arguments}) + CALL_CLOSE


def native_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages for a template that handles tools itself: call arguments as dicts, as in transformers."""
    out = []
    for message in messages:
        if message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = dict(call.get("function", {}))
                if isinstance(function.get("arguments"), str):
                    try:
                        function["arguments"] = json.loads(function["arguments"])
                    except json.JSONDecodeError:
                        pass
                calls.append({**call, "function": function})
            message = {**message, "tool_calls": calls}
        out.append(message)
    return out


def renders_tools(template: str | dict[str, str] | None) -> bool:
    """Whether a chat template (a checkpoint's own: a string or named templates) lays out tool
    definitions and calls itself, i.e. reads `tools`."""
    return template is not None and template_reads(select_template(template, None, tools=[]), "tools")


def template_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, native: bool
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(messages, the `tools=` value) to render a chat with: as they are for a template that
    renders tools itself (`native`), else in the default format when tools or earlier calls are
    involved. `tools` are function dicts ({"name", "description", "parameters"})."""
    if native:
        return native_messages(messages), [{"type": "function", "function": t} for t in tools] if tools else None
    if tools or any(m.get("tool_calls") or m["role"] == "tool" for m in messages):
        return default_format_messages(messages, tools), None
    return messages, None


def tool_listing(tools: list[dict[str, Any]]) -> str:
    """The default format's system text listing `tools` (function dicts)."""
    return DEFAULT_TOOL_PROMPT.format(tools="\n".join(json.dumps({"type": "function", "function": t})
                                                      for t in tools))


def default_format_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
                            ) -> list[dict[str, Any]]:
    """Messages in the default tool format, for templates that know nothing of tools."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role, content = message["role"], message.get("content") or ""
        if role == "assistant" and message.get("tool_calls"):
            blocks = "\n".join(call_block(call) for call in message["tool_calls"])
            out.append({"role": "assistant", "content": f"{content}\n{blocks}" if content else blocks})
        elif role == "tool":
            block = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1].get("tool_results"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "tool_results": True})
        else:
            out.append({"role": role, "content": content})
    for message in out:
        message.pop("tool_results", None)
    if tools:
        listing = tool_listing(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + listing}
        else:
            out.insert(0, {"role": "system", "content": listing})
    return out


def _partial_end(text: str) -> int:
    """How many trailing characters of a cut reply are the start of `}` + `</tool_call>`."""
    return next((n for n in range(len(_END) - 1, 0, -1) if text.endswith(_END[:n])), 0)


@dataclass
class CallDelta:
    """A streamed change to call `index`: its start (id and name) and/or more argument text."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None

    def openai(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"index": self.index}
        if self.id is not None:
            entry.update(id=self.id, type="function")
        function = {"name": self.name} if self.name is not None else {}
        entry["function"] = {**function, "arguments": self.arguments}
        return entry


@dataclass
class ToolCallReader:
    """Reads a reply's text as it streams: text replies pass through, calls become `CallDelta`s.

    The reply is a call when its first character is "<" (the grammar allows nothing else there).
    Argument text is handed out as it arrives, holding back only what could be the closing
    `}` + `</tool_call>`.
    """

    mode: str | None = None  # None until the first character, then "text" or "calls"
    buffer: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)  # {"id", "name", "arguments"}
    _args_from: int | None = None  # where the current call's argument text starts in buffer
    _sent: int = 0  # argument characters of the current call already handed out

    def push(self, text: str) -> tuple[str, list[CallDelta]]:
        """More reply text -> (text for `content`, call deltas)."""
        if self.mode is None and text:
            self.mode = "calls" if text.startswith("<") else "text"
        if self.mode != "calls":
            return text, []
        self.buffer += text
        return "", list(self._scan(final=False))

    def finish(self) -> list[CallDelta]:
        """At the end: the held-back argument text of a call the token limit cut."""
        return list(self._scan(final=True)) if self.mode == "calls" else []

    def _scan(self, final: bool) -> Iterator[CallDelta]:
        while True:
            if self._args_from is None:
                match = _HEADER.match(self.buffer)
                if match is None:
                    return
                name = json.loads(f'"{match.group(1)}"')
                self.calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "name": name, "arguments": ""})
                self._args_from, self._sent = match.end(), 0
                yield CallDelta(len(self.calls) - 1, id=self.calls[-1]["id"], name=name)
            end = self.buffer.find(_END, self._args_from)
            upto = end if end >= 0 else len(self.buffer) - (_partial_end(self.buffer) if final else len(_END))
            fresh = self.buffer[self._args_from + self._sent: upto] if upto > self._args_from + self._sent else ""
            if fresh:
                self._sent += len(fresh)
                self.calls[-1]["arguments"] += fresh
                yield CallDelta(len(self.calls) - 1, arguments=fresh)
            if end < 0:
                return
            self.buffer = self.buffer[end + len(_END):].removeprefix("\n")
            self._args_from = None

    def tool_calls(self) -> list[dict[str, Any]]:
        """The calls read so far, in OpenAI's message shape."""
        return [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in self.calls]


def read_reply(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """A whole reply -> (its text content, or None when it is calls; the calls in OpenAI's message
    shape, arguments as a JSON string). A call cut short keeps the argument text it has."""
    reader = ToolCallReader()
    content, _ = reader.push(text)
    reader.finish()
    return (content, []) if reader.mode != "calls" else (None, reader.tool_calls())


def reply_text(message: dict[str, Any]) -> str:
    """An assistant message in OpenAI's shape as the text the model wrote: its calls' blocks, or
    its content."""
    calls = message.get("tool_calls") or []
    return "\n".join(call_block(call) for call in calls) if calls else message.get("content") or ""
