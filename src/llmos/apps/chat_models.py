"""Layer 8: where an app's model runs: in this process, or behind an OpenAI-compatible server.

Apps need two things from a model: the reply to a chat that matches a JSON
schema (`complete_json`), and the Agent's next turn given tools and a
tool_choice (`complete_tools`: the reply's text in the one tool-call format of
`llmos.generation.tool_calls`, and whether it ended or hit the token limit).
`LocalChatModel` decodes here under the grammar; `RemoteChatModel` asks a
`/v1/chat/completions` endpoint (`llmos serve`, or any server that honours
`response_format` json_schema and `tools`) to do the same, so an agent can
drive a model another process already holds: the server renders the chat and
constrains the reply with the same module, so the steps are the same.
Only the standard library talks HTTP here: apps need no client package.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from llmos.errors import LLMOSError
from llmos.generation.tool_calls import renders_tools, reply_text, template_messages, tool_grammar


class ChatModelError(LLMOSError):
    """The model's server could not be reached or refused the request."""


class LocalChatModel:
    """A model and tokenizer in this process."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    def complete_json(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int) -> str:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        out = self.model.generate(ids, max_new_tokens=max_tokens, tokenizer=self.tokenizer, json_schema=schema,
                                  do_sample=False)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    def complete_tools(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], tool_choice: str,
                       max_tokens: int) -> tuple[str, str]:
        """(the reply's text, "stop" or "length") for `messages` (OpenAI's shape) with `tools`
        (function dicts) under tool_choice "auto", "required" or "none", as the server does it."""
        callable_tools = tools if tool_choice != "none" else []
        chat, listed = template_messages(messages, callable_tools, renders_tools(self.tokenizer.chat_template))
        ids = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", tools=listed)
        constraint = {"grammar": tool_grammar(callable_tools, tool_choice == "auto", False),
                      "tokenizer": self.tokenizer} if callable_tools else {}
        out = self.model.generate(ids, max_new_tokens=max_tokens, do_sample=False, **constraint)
        new = out[0, ids.shape[1]:].tolist()
        stops = {*(self.model.config.eos_token_ids or []), self.tokenizer.eos_token_id}
        finish = "length" if len(new) >= max_tokens and new[-1] not in stops else "stop"
        return self.tokenizer.decode(new, skip_special_tokens=True), finish


class RemoteChatModel:
    """`RemoteChatModel("http://127.0.0.1:8000/v1")`: the served model (the first one listed unless
    `model=` names it), with greedy decoding under `response_format` json_schema."""

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None,
                 timeout: float = 300.0) -> None:
        self.base_url, self.api_key, self.timeout = base_url.rstrip("/"), api_key, timeout
        self.model = model or self._request("GET", "/models")["data"][0]["id"]

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            try:
                detail = json.loads(detail)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                pass
            raise ChatModelError(f"{self.base_url}{path} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ChatModelError(f"cannot reach {self.base_url}{path}: {getattr(exc, 'reason', exc)}") from None

    def complete_json(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int) -> str:
        reply = self._request("POST", "/chat/completions", {
            "model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "action", "schema": schema}}})
        return reply["choices"][0]["message"]["content"] or ""

    def complete_tools(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], tool_choice: str,
                       max_tokens: int) -> tuple[str, str]:
        """As `LocalChatModel.complete_tools`, the server rendering and constraining the reply."""
        reply = self._request("POST", "/chat/completions", {
            "model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
            "tools": [{"type": "function", "function": t} for t in tools], "tool_choice": tool_choice})
        choice = reply["choices"][0]
        return reply_text(choice["message"]), "length" if choice.get("finish_reason") == "length" else "stop"


def chat_model(model: Any, tokenizer: Any = None) -> Any:
    """Anything with `complete_json` or `complete_tools` (a RemoteChatModel, your own backend) as it
    is; anything else is a local model that needs its tokenizer."""
    if callable(getattr(model, "complete_json", None)) or callable(getattr(model, "complete_tools", None)):
        return model
    if tokenizer is None:
        raise ChatModelError("a local model needs its tokenizer (or pass a RemoteChatModel for a server)")
    return LocalChatModel(model, tokenizer)
