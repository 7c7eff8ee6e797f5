"""Layer 7 (the client side of the API): `RemoteGenerator`, the `Generator` backend over HTTP.

`RemoteGenerator("http://127.0.0.1:8000/v1")` drives the model another process
serves (`llmos serve`, or any OpenAI-compatible server): a chat goes to
`/v1/chat/completions`, token ids to `/v1/completions`; sampling settings,
stop strings and the seed go as OpenAI's fields (top_k, min_p and
repetition_penalty as the extensions vLLM, llama.cpp and `llmos serve` read:
always to a server whose model card lists its own defaults, as `llmos serve`'s
does, so none of its defaults fills a field left out; to others only when
they are on);
a JSON-schema constraint as `response_format` json_schema; tools as `tools` and
`tool_choice` (the reply's calls read back as their `<tool_call>` blocks). A regex, grammar
or choices constraint has no OpenAI field, so it is refused here rather than
dropped. `stream` reads the server-sent events. Only the standard library
talks HTTP: no client package is needed. A server that cannot be reached, or
answers with an error, is one `RemoteError` naming the URL and its message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from llmos.errors import LLMOSError
from llmos.generation.service import (
    Completion,
    GenerationParams,
    Generator,
    Prompt,
    StreamEvent,
    check_prompts,
    per_prompt,
)
from llmos.generation.tool_calls import reply_text


class RemoteError(LLMOSError):
    """The model's server could not be reached or refused the request."""


class RemoteGenerator(Generator):
    """The served model (the first one the server lists unless `model=` names it)."""

    parallel = 8  # the server batches what it is sent at once; a few in flight keep it busy

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None,
                 timeout: float = 300.0) -> None:
        self.base_url, self.api_key, self.timeout = base_url.rstrip("/"), api_key, timeout
        listed = self._request("GET", "/models")
        self.model = model or listed["data"][0]["id"]
        card = next((m for m in listed.get("data", []) if m.get("id") == self.model), {})
        self.max_len = card.get("max_model_len")
        self.fills_defaults = isinstance(card.get("defaults"), dict)  # send every field: its defaults differ

    def _open(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            try:
                detail = json.loads(detail)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                pass
            raise RemoteError(f"{self.base_url}{path} answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise RemoteError(f"cannot reach {self.base_url}{path}: {getattr(exc, 'reason', exc)}") from None

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._open(method, path, body) as response:
            return json.loads(response.read())

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        check_prompts([prompt])
        if isinstance(prompt[0], int):
            return list(prompt)
        raise RemoteError("a remote model renders chats on its server; its token ids are not known here",
                          param="prompts")

    def _body(self, prompt: Prompt, params: GenerationParams, stream: bool) -> tuple[str, dict[str, Any]]:
        if params.extra:
            raise RemoteError(f"a remote model does not take generate()'s {sorted(params.extra)}",
                              param=sorted(params.extra)[0])
        body: dict[str, Any] = {
            "model": self.model, "max_tokens": params.max_new_tokens, "temperature": params.temperature,
            "top_p": params.top_p, "stream": stream}
        for name, value, off in (("top_k", params.top_k, 0), ("min_p", params.min_p, 0.0),
                                 ("repetition_penalty", params.repetition_penalty, 1.0)):
            if value != off or self.fills_defaults:
                body[name] = value
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        chat = isinstance(prompt[0], dict)
        if params.logprobs:
            body["logprobs"] = True if chat else 0
        if params.tools:
            if not chat:
                raise RemoteError("tools go with a chat prompt (a list of messages)", param="tools")
            body["tools"] = [{"type": "function", "function": t} for t in params.tools]
            body["tool_choice"] = params.tool_choice
        if params.constraint is not None:
            kind, value = next(iter(params.constraint.items()))
            if kind != "json_schema" or not chat:
                raise RemoteError(f"a remote model takes a JSON schema constraint on a chat (OpenAI's response_format)"
                                  f"; {kind} has no OpenAI field", param="constraint")
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "reply", "schema": value}}
        if chat:
            return "/chat/completions", {**body, "messages": prompt}
        return "/completions", {**body, "prompt": list(prompt)}

    def generate(self, prompts: Sequence[Prompt],
                 params: GenerationParams | Sequence[GenerationParams] | None = None) -> list[Completion]:
        prompts = check_prompts(prompts)
        completions = []
        for prompt, p in zip(prompts, per_prompt(params, len(prompts)), strict=True):
            path, body = self._body(prompt, p, stream=False)
            choice = self._request("POST", path, body)["choices"][0]
            text = reply_text(choice.get("message") or {}) if path == "/chat/completions" else choice.get("text")
            completions.append(Completion(text or "", [], choice.get("finish_reason") or "stop",
                                          _mean_log_prob(choice.get("logprobs")) if p.logprobs else None,
                                          p.max_new_tokens))
        return completions

    def stream(self, prompts: Sequence[Prompt],
               params: GenerationParams | Sequence[GenerationParams] | None = None) -> Iterator[StreamEvent]:
        prompts = check_prompts(prompts)
        for index, (prompt, p) in enumerate(zip(prompts, per_prompt(params, len(prompts)), strict=True)):
            if p.calls_tools:  # a reply's calls come back whole: one event
                [completion] = self.generate([prompt], p)
                yield StreamEvent(index, completion.text, completion)
                continue
            path, body = self._body(prompt, p, stream=True)
            text, reason, scores = "", "stop", []
            with self._open("POST", path, body) as response:
                for line in response:
                    data = line.decode("utf-8").strip().removeprefix("data:").strip()
                    if not data or data == "[DONE]" or not line.startswith(b"data:"):
                        continue
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise RemoteError(f"{self.base_url}{path}: {chunk['error'].get('message')}")
                    for choice in chunk.get("choices") or []:
                        delta = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
                        scores += _log_probs(choice.get("logprobs"))
                        reason = choice.get("finish_reason") or reason
                        if delta:
                            text += delta
                            yield StreamEvent(index, delta)
            log_prob = (sum(scores) / len(scores) if scores else 0.0) if p.logprobs else None
            yield StreamEvent(index, "", Completion(text, [], reason, log_prob, p.max_new_tokens))


def _log_probs(logprobs: Any) -> list[float]:
    """The token log-probabilities of a chat choice's `logprobs.content` or a completion's `token_logprobs`."""
    if not isinstance(logprobs, dict):
        return []
    if isinstance(logprobs.get("content"), list):
        return [float(t["logprob"]) for t in logprobs["content"] if t.get("logprob") is not None]
    return [float(v) for v in logprobs.get("token_logprobs") or [] if v is not None]


def _mean_log_prob(logprobs: Any) -> float | None:
    values = _log_probs(logprobs)
    return sum(values) / len(values) if values else None
