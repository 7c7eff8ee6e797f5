"""Layer 7: the two generation endpoints, /v1/completions and /v1/chat/completions.

Each validates its body, turns it into prompts + `SamplingParams` (rejecting,
never truncating, what does not fit the context), runs a `ChoiceGroup`, and
answers with OpenAI's JSON or its server-sent-event chunks. Sampling fields a
request leaves out take the model's own values (its generation_config), else
LLMOS's chat defaults when a chat request names no sampling field at all
(`chat_sampling`; a grammar-constrained reply gets no default repetition
penalty), else OpenAI's neutral ones (so `temperature: 0` is plain greedy);
a chat reply without max_tokens / max_completion_tokens stops at the server's
`max_tokens_default` (finish_reason "length"), as llama-server and Ollama cap
theirs, rather than running on to the end of the context.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from llmos.errors import LLMOSError
from llmos.generation.tool_calls import ToolCallReader, template_messages
from llmos.generation_config import CHAT_SAMPLING, NEUTRAL_SAMPLING, chat_sampling
from llmos.serving.dispatch import ChoiceGroup, Piece
from llmos.serving.errors import APIError, read_json_body
from llmos.serving.logprobs import TextOffsets, chat_logprobs, completion_logprobs
from llmos.serving.reply_grammar import reply_constraint
from llmos.serving.sampling import SamplingParams
from llmos.serving.schemas import ChatCompletionRequest, CompletionRequest

log = logging.getLogger(__name__)
CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
              "tool": "tool"}


def _check_model(state, model: str) -> None:
    if model != state.model_id:
        raise APIError(404, f"The model '{model}' does not exist; this server serves '{state.model_id}'",
                       param="model", code="model_not_found")


def _request_id(request: Request) -> str:
    """The id the server's middleware gave this request (its x-request-id header)."""
    return getattr(request.state, "request_id", None) or uuid.uuid4().hex


def _params(state, body, prompts: list[list[int]], limit: int | None, logprobs: int | None,
            prompt_logprobs: bool = False, default_limit: int | None = None,
            constraint: Any = None) -> SamplingParams:
    """`limit` is the request's own token limit; without one a reply may use the rest of the context,
    or `default_limit` tokens of it when that is given. `constraint`: the reply's grammar, if any.
    Sampling left out: the model's own values, else LLMOS's chat defaults for a chat request that
    names no sampling field at all, else the neutral ones (temperature 1, no warper, no penalty), as
    OpenAI's API: a request that chose `temperature: 0` gets plain greedy decoding."""
    longest = max(len(p) for p in prompts)
    room = state.engine.room_for(longest)
    if longest > state.engine.max_len or (longest == state.engine.max_len and limit != 0):
        raise APIError(400, f"This model's maximum context length is {state.engine.max_len} tokens; "
                       f"the prompt has {longest} tokens, leaving no room for a completion",
                       param="messages" if isinstance(body, ChatCompletionRequest) else "prompt",
                       code="context_length_exceeded")
    if limit is not None and limit > room:
        raise APIError(400, f"This model's maximum context length is {state.engine.max_len} tokens. "
                       f"However, you requested {longest + limit} tokens ({longest} in the prompt, "
                       f"{limit} for the completion); ask for at most {room} completion tokens",
                       param="max_tokens", code="context_length_exceeded")
    if limit is None:
        limit = room if default_limit is None else min(default_limit, room)
    named = {name: getattr(body, name) for name in CHAT_SAMPLING if getattr(body, name) is not None}
    fallback = CHAT_SAMPLING if isinstance(body, ChatCompletionRequest) and not named else NEUTRAL_SAMPLING
    sampling = {**chat_sampling(state.generation_defaults, constraint is not None, fallback), **named}
    return SamplingParams(max_tokens=limit, **sampling, seed=body.seed, logprobs=logprobs,
                          prompt_logprobs=prompt_logprobs, stop_token_ids=state.tokenizer.stop_token_ids,
                          constraint=constraint)


def _completion_prompts(state, prompt: Any) -> list[list[int]]:
    vocab = state.engine.config.vocab_size
    if prompt is None:  # OpenAI's spec: a null prompt is "<|endoftext|>", a new document
        prompt = ""
    if isinstance(prompt, str):
        prompt = [prompt]
    elif prompt and isinstance(prompt[0], int):
        prompt = [prompt]
    prompts = []
    for item in prompt:
        ids = state.tokenizer.encode(item) if isinstance(item, str) else list(item)
        if any(not 0 <= t < vocab for t in ids):
            raise APIError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
        prompts.append(ids or [_document_start(state)])
    return prompts


def _document_start(state) -> int:
    """The one token an empty prompt becomes: the model starts a new document, as OpenAI's
    models do from "<|endoftext|>". BOS if the model has one, else that separator, else EOS."""
    tokenizer, config = state.tokenizer, state.engine.config
    eos = next(iter(config.eos_token_ids), None)
    candidates = (getattr(tokenizer.tokenizer, "bos_token_id", None), config.bos_token_id,
                  tokenizer.token_to_id("<|endoftext|>"), getattr(tokenizer.tokenizer, "eos_token_id", None),
                  eos)
    start = next((t for t in candidates if isinstance(t, int)), None)
    if start is None:
        raise APIError(400, "the prompt is empty and this model has no BOS or end-of-text token to start "
                       "from; give at least one token", param="prompt")
    return start


def chat_prompt(state, body: ChatCompletionRequest) -> list[int]:
    messages = []
    for i, message in enumerate(body.messages):
        if message.role not in CHAT_ROLES:
            raise APIError(400, f"Invalid value for 'messages[{i}].role': {message.role!r}; expected one "
                           f"of {sorted(CHAT_ROLES)}", param=f"messages[{i}].role", code="invalid_value")
        calls = [call.model_dump(exclude_none=True) for call in message.tool_calls or []] or None
        messages.append({"role": CHAT_ROLES[message.role], "content": message.text(),
                         "tool_calls": calls, "tool_call_id": message.tool_call_id})
    messages, listed = template_messages(messages, body.callable_tools, state.tokenizer.renders_tools)
    try:
        text = state.tokenizer.render_chat(messages, tools=listed)
    except LLMOSError as exc:
        raise APIError(400, f"the chat template rejected these messages: {exc}", param="messages") from None
    return state.tokenizer.encode(text)


def _usage(group: ChoiceGroup) -> dict[str, int]:
    completion = sum(len(c.tokens) for c in group.choices)
    return {"prompt_tokens": group.prompt_tokens, "completion_tokens": completion,
            "total_tokens": group.prompt_tokens + completion}


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(group: ChoiceGroup, request: Request, first: list[dict], chunk, usage_chunk) -> AsyncIterator[str]:
    try:
        for data in first:
            yield _sse(data)
        async for piece in group.pieces(request.is_disconnected):
            yield _sse(chunk(piece))
        if usage_chunk is not None:
            yield _sse(usage_chunk())
    except APIError as exc:
        yield _sse(exc.body())
    except Exception as exc:  # a bug mid-stream: end this stream cleanly, keep the connection
        log.exception("unhandled error while streaming")
        yield _sse(APIError(500, f"internal server error ({type(exc).__name__})").body())
    finally:
        group.cancel()
    yield "data: [DONE]\n\n"


async def _collect(group: ChoiceGroup, request: Request) -> dict[int, str]:
    """Every choice's whole text. A watcher waits for the client's disconnect message meanwhile (the
    non-blocking `is_disconnected` never sees it behind an HTTP middleware), so a client that leaves
    stops its decoding at the next check instead of after its last token."""
    texts = {c.index: "" for c in group.choices}
    watcher = asyncio.create_task(_until_disconnected(request))

    async def left() -> bool:
        return watcher.done()

    try:
        async for piece in group.pieces(left):
            texts[piece.index] += piece.text
    finally:
        watcher.cancel()
    return texts


async def _until_disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


# ---- /v1/completions ------------------------------------------------------------------------


async def completions(request: Request) -> Any:
    state = request.app.state.llmos
    body = await read_json_body(request, CompletionRequest, state.max_body_bytes)
    _check_model(state, body.model)
    prompts = _completion_prompts(state, body.prompt)
    want_prompt_scores = body.echo and body.logprobs is not None
    params = _params(state, body, prompts, body.max_tokens, body.logprobs, want_prompt_scores)
    group = ChoiceGroup(state.engine, state.tokenizer)
    group.submit(prompts, body.n, params, body.stop or [])
    ident, created = f"cmpl-{_request_id(request)}", int(time.time())
    prompt_texts = [state.tokenizer.decode(p) for p in prompts]

    streamed_offsets = {c.index: TextOffsets(state.tokenizer, len(prompt_texts[c.index // body.n])
                                             if body.echo else 0)
                        for c in group.choices} if body.stream and body.logprobs is not None else {}

    def logprobs_for(choice, tokens, streamed=False):
        if body.logprobs is None:
            return None
        if streamed:  # the echoed prompt went out first, without logprobs
            return completion_logprobs(state.tokenizer, tokens, streamed_offsets[choice.index])
        if body.echo and choice.prompt_logprobs is not None:
            tokens = choice.prompt_logprobs + tokens
        return completion_logprobs(state.tokenizer, tokens, TextOffsets(state.tokenizer))

    def base(choices):
        return {"id": ident, "object": "text_completion", "created": created, "model": state.model_id,
                "choices": choices}

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        first = []
        if body.echo:
            first = [base([{"index": c.index, "text": prompt_texts[c.index // body.n], "logprobs": None,
                            "finish_reason": None}]) for c in group.choices]

        def chunk(piece: Piece):
            choice = group.choices[piece.index]
            return base([{"index": piece.index, "text": piece.text, "finish_reason": piece.finish_reason,
                          "logprobs": logprobs_for(choice, piece.tokens, streamed=True)}])

        usage = (lambda: {**base([]), "usage": _usage(group)}) if include_usage else None
        return StreamingResponse(_stream(group, request, first, chunk, usage), media_type="text/event-stream")

    texts = await _collect(group, request)
    choices = []
    for choice in group.choices:
        prefix = prompt_texts[choice.index // body.n] if body.echo else ""
        choices.append({"index": choice.index, "text": prefix + texts[choice.index],
                        "logprobs": logprobs_for(choice, choice.tokens),
                        "finish_reason": choice.finish_reason})
    return JSONResponse({**base(choices), "usage": _usage(group)})


# ---- /v1/chat/completions -------------------------------------------------------------------


async def chat_completions(request: Request) -> Any:
    state = request.app.state.llmos
    body = await read_json_body(request, ChatCompletionRequest, state.max_body_bytes)
    _check_model(state, body.model)
    prompt = chat_prompt(state, body)
    logprobs = (body.top_logprobs or 0) if body.logprobs else None
    constraint, constraint_field = reply_constraint(state, body)
    params = _params(state, body, [prompt], body.token_limit, logprobs, default_limit=state.max_tokens_default,
                     constraint=constraint)
    if body.tool_mode != "none" and state.tools_adapter is not None:
        params.adapter = state.tools_adapter  # the tool-use adapter decodes requests that carry tools
    group = ChoiceGroup(state.engine, state.tokenizer, constraint_field)
    group.submit([prompt], body.n, params, body.stop or [])
    readers = {c.index: ToolCallReader() for c in group.choices} if body.tool_mode != "none" else {}
    ident, created = f"chatcmpl-{_request_id(request)}", int(time.time())

    def base(choices, kind="chat.completion"):
        return {"id": ident, "object": kind, "created": created, "model": state.model_id,
                "system_fingerprint": "llmos", "choices": choices}

    def finish_reason(choice) -> str | None:
        reader = readers.get(choice.index)
        called = reader is not None and reader.calls and choice.finish_reason == "stop"
        return "tool_calls" if called else choice.finish_reason

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        extra = {"usage": None} if include_usage else {}
        first = [{**base([{"index": c.index, "delta": {"role": "assistant", "content": ""},
                           "logprobs": None, "finish_reason": None}], "chat.completion.chunk"), **extra}
                 for c in group.choices]

        def chunk(piece: Piece):
            text, calls = piece.text, []
            reader = readers.get(piece.index)
            if reader is not None:
                text, calls = reader.push(text)
                if piece.finish_reason is not None:
                    calls += reader.finish()
            delta: dict[str, Any] = {"content": text} if text else {}
            if calls:
                delta["tool_calls"] = [call.openai() for call in calls]
            lp = chat_logprobs(state.tokenizer, piece.tokens) if body.logprobs else None
            done = finish_reason(group.choices[piece.index]) if piece.finish_reason is not None else None
            return {**base([{"index": piece.index, "delta": delta, "logprobs": lp,
                             "finish_reason": done}], "chat.completion.chunk"), **extra}

        usage = (lambda: {**base([], "chat.completion.chunk"), "usage": _usage(group)}) if include_usage else None
        return StreamingResponse(_stream(group, request, first, chunk, usage), media_type="text/event-stream")

    texts = await _collect(group, request)
    choices = []
    for c in group.choices:
        message: dict[str, Any] = {"role": "assistant", "content": texts[c.index], "refusal": None}
        reader = readers.get(c.index)
        if reader is not None:
            reader.push(texts[c.index])
            reader.finish()
            if reader.calls:
                message.update(content=None, tool_calls=reader.tool_calls())
        choices.append({"index": c.index, "message": message,
                        "logprobs": chat_logprobs(state.tokenizer, c.tokens) if body.logprobs else None,
                        "finish_reason": finish_reason(c)})
    return JSONResponse({**base(choices), "usage": _usage(group)})
