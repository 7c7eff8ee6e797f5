"""Layer 7: POST /tokenize and POST /detokenize, in vLLM's request and response shapes.

Clients (lm-eval among them) count and cut prompts with these instead of
loading the tokenizer themselves. A prompt is tokenized exactly as
/v1/completions tokenizes it, and messages exactly as /v1/chat/completions
renders them, so `count` is the prompt_tokens a request will be charged.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmos.serving.errors import APIError, read_json_body, validation_error
from llmos.serving.responses import DetokenizeResponse, TokenizeResponse
from llmos.serving.routes import chat_prompt
from llmos.serving.schemas import ChatCompletionRequest, ChatMessage, StrictModel, ToolSpec


class TokenizeCompletionRequest(StrictModel):
    model: str | None = None
    prompt: str
    # None (the default): as /v1/completions encodes prompts; true/false: the tokenizer's own
    # special tokens (e.g. BOS) added or not
    add_special_tokens: bool | None = None
    return_token_strs: bool | None = False


class TokenizeChatRequest(StrictModel):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolSpec] | None = Field(None, max_length=128)
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    add_special_tokens: bool = False
    return_token_strs: bool | None = False


class DetokenizeRequest(StrictModel):
    model: str | None = None
    tokens: list[int]


class _AnyObject(BaseModel):
    model_config = ConfigDict(extra="allow")


def _check_model(state, model: str | None) -> None:
    if model is not None and model != state.model_id:
        raise APIError(404, f"The model '{model}' does not exist; this server serves '{state.model_id}'",
                       param="model", code="model_not_found")


def _validate(schema: type[StrictModel], data: dict[str, Any]) -> Any:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _encode(served, text: str, add_special_tokens: bool | None) -> list[int]:
    if add_special_tokens is None or served.backend is None:
        return served.encode(text)
    return list(served.backend.encode(text, add_special_tokens=add_special_tokens).ids)


def _token_strs(served, ids: list[int]) -> list[str]:
    if served.backend is not None:
        return [served.backend.id_to_token(i) or "" for i in ids]
    return [served.token_text(i) for i in ids]


async def tokenize(request: Request) -> dict[str, Any]:
    state = request.app.state.llmos
    data = (await read_json_body(request, _AnyObject, state.max_body_bytes)).model_extra or {}
    body = _validate(TokenizeChatRequest if "messages" in data else TokenizeCompletionRequest, data)
    _check_model(state, body.model)
    if isinstance(body, TokenizeChatRequest):
        if not body.add_generation_prompt or body.continue_final_message or body.add_special_tokens:
            raise APIError(400, "this server tokenizes messages as /v1/chat/completions renders them, "
                           "for a new assistant turn: add_generation_prompt must be true, "
                           "continue_final_message and add_special_tokens false",
                           param="add_generation_prompt", code="invalid_value")
        chat = ChatCompletionRequest(model=state.model_id, messages=body.messages, tools=body.tools)
        ids = chat_prompt(state, chat)
    else:
        ids = _encode(state.tokenizer, body.prompt, body.add_special_tokens)
    strs = _token_strs(state.tokenizer, ids) if body.return_token_strs else None
    return TokenizeResponse(count=len(ids), max_model_len=state.engine.max_len, tokens=ids,
                            token_strs=strs).model_dump()


async def detokenize(request: Request) -> dict[str, Any]:
    state = request.app.state.llmos
    body = await read_json_body(request, DetokenizeRequest, state.max_body_bytes)
    _check_model(state, body.model)
    vocab = state.engine.config.vocab_size
    bad = next((t for t in body.tokens if not 0 <= t < vocab), None)
    if bad is not None:
        raise APIError(400, f"token id {bad} is out of range: ids must be in [0, {vocab})", param="tokens",
                       code="invalid_value")
    return DetokenizeResponse(prompt=state.tokenizer.decode(body.tokens)).model_dump()
