"""Layer 8: the task pipelines over HTTP: `GET /v1/tasks` and `POST /v1/tasks/{task}` on a served model.

The serving app (layer 7) knows nothing of pipelines; `llmos serve` calls
`add_task_routes(app)` after `create_app`, so the routes sit behind the same
`/v1` API-key guard and decode through the app's engine, the one owner of the
model (`serving.generator.EngineGenerator`): a task's prompts join the
engine's batches beside the chat requests, several tasks run at once, and
zero-shot sentiment scores its label words from the engine's logits. The
pipeline waits in a worker thread; a busy engine is a 429, as for chat.

    POST /v1/tasks/extraction  {"input": "Ada lives in Paris", "options": {"fields": "name,city"}}
    -> {"task": "extraction", "result": {"name": "Ada", "city": "Paris"}, "seconds": 0.4}

A request's options are the task's own (see GET /v1/tasks) plus a few decoding
keywords (REQUEST_GENERATION); nothing a request sends names a file on the server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from llmos.apps.pipelines import TASKS, PipelineError, pipeline, task_class
from llmos.errors import LLMOSError
from llmos.model import ContextLengthError
from llmos.serving.engine import QueueFullError
from llmos.serving.errors import APIError, read_json_body
from llmos.serving.generator import EngineGenerator

# decoding keywords a request may set beside the task's options (others stay the task's defaults)
REQUEST_GENERATION = ("max_new_tokens", "temperature", "top_p", "do_sample")
MAX_NEW_TOKENS = 2048


class TaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str | dict[str, str]
    options: dict[str, Any] = Field(default_factory=dict)


def option_choices(task: str) -> dict[str, list[str]]:
    """The valid values of options that have a fixed set (for the page's select boxes)."""
    if task == "writing":
        from llmos.apps.pipelines.text import WRITING_MODES

        return {"mode": list(WRITING_MODES)}
    if task == "translation":
        from llmos.apps.pipelines.translation import LANGUAGES

        return {"src_lang": list(LANGUAGES), "tgt_lang": list(LANGUAGES)}
    return {}


def task_card(task: str) -> dict[str, Any]:
    cls = task_class(task)[0]
    return {"name": task, "summary": cls.summary, "output": cls.output, "fields": list(cls.fields),
            "options": dict(cls.options), "choices": option_choices(task)}


def check_options(task: str, options: dict[str, Any]) -> dict[str, Any]:
    """The request's options, or a 400 naming the one that is not allowed."""
    cls = task_class(task)[0]
    for name, value in options.items():
        if name not in cls.options and name not in REQUEST_GENERATION:
            raise APIError(400, f"{task}: unknown option {name!r}; its options are "
                           f"{', '.join(cls.options) or '(none)'}, and {', '.join(REQUEST_GENERATION)}",
                           param=f"options.{name}", code="unknown_option")
        if name == "schema" and value is not None and not isinstance(value, dict):
            raise APIError(400, f"{task}: options.schema must be a JSON schema object (a server file path is "
                           "not accepted over HTTP)", param="options.schema", code="invalid_value")
    tokens = options.get("max_new_tokens")
    if tokens is not None and (not isinstance(tokens, int) or not 1 <= tokens <= MAX_NEW_TOKENS):
        raise APIError(400, f"options.max_new_tokens={tokens!r} must be an integer from 1 to {MAX_NEW_TOKENS}",
                       param="options.max_new_tokens", code="invalid_value")
    return options


def request_param(param: str | None, given: str | dict[str, str]) -> str | None:
    """The request field a pipeline's error is about: its `param` ("input.question", "options.max_words"),
    except that an input sent as text is the task's main field itself, "input"."""
    if param is not None and param.startswith("input.") and not isinstance(given, dict):
        return "input"
    return param


def add_task_routes(app: FastAPI) -> None:
    """Add GET /v1/tasks and POST /v1/tasks/{task} to an app made by `llmos.serving.api.create_app`."""
    state = app.state.llmos
    generator = EngineGenerator(state.engine, state.tokenizer, tools_adapter=state.tools_adapter)
    tokenizer = generator.tokenizer  # the LLMOS tokenizer inside

    @app.get("/v1/tasks")
    async def list_tasks() -> dict[str, Any]:
        return {"object": "list", "data": [task_card(task) for task in TASKS]}

    @app.post("/v1/tasks/{task}")
    async def run_task(task: str, request: Request) -> dict[str, Any]:
        if task not in TASKS:
            raise APIError(400, f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}", param="task",
                           code="unknown_task")
        body = await read_json_body(request, TaskRequest, state.max_body_bytes)
        options = check_options(task, body.options)
        if not hasattr(tokenizer, "apply_chat_template"):
            raise APIError(400, "this server's tokenizer has no chat template support, so it cannot run tasks",
                           param="task", code="unsupported")

        def work() -> Any:
            return pipeline(task, model=generator, tokenizer=tokenizer, **options)(body.input)

        start = time.perf_counter()
        try:
            result = await asyncio.to_thread(work)
        except QueueFullError as exc:
            raise APIError(429, str(exc), code="queue_full", headers={"Retry-After": "1"}) from None
        except ContextLengthError as exc:
            raise APIError(400, str(exc), param="input", code="context_length_exceeded") from None
        except PipelineError as exc:
            raise APIError(400, str(exc), param=request_param(exc.param, body.input),
                           code="invalid_value") from None
        except LLMOSError as exc:  # a constraint the engine refused, a bad decoding value
            raise APIError(400, str(exc), param=exc.param, code="invalid_value") from None
        return {"task": task, "result": result, "seconds": round(time.perf_counter() - start, 3)}
