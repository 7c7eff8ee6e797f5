"""Layer 8b: the playground: try a model on a prompt or a task, its answer streamed as it is written.

    GET  /api/tasks     -> {"tasks": [{"name", "summary", "fields", "options", "choices", "defaults", "streams"}],
                            "sampling": {"temperature", "top_k", "top_p", "min_p", "repetition_penalty"}}
    POST /api/generate  {"model": "runs:tiny/best", "prompt": "Hi", "task": "chat", "max_new_tokens": 64,
                         "temperature": 0.7, "top_p": 0.9, "top_k": 50, "seed": 1, "json_schema": {...},
                         <the task's options and other input fields>}
    -> SSE: data: {"text": delta} ..., then data: {"done": true, "text", "tokens", "seconds",
       "tokens_per_second", "task", "result", "cut", "cached"}  or  data: {"error": {"message"}}

A task is one of the pipelines of `apps.pipelines`: the pipeline builds the
prompt (its templates, through the model's chat template), the decoding
defaults and the constraint, and parses the reply into `result`, as `llmos run`
does; the playground only adds the streamer. No task: the model's chat
template when it has one (`chat`), else the prompt continued as it is
(`text-generation`). `json_schema` decodes under that schema's grammar, so the
text always validates. The request's sampling settings override the task's
decoding defaults; a request that samples (a temperature > 0) without naming
top_k, top_p, min_p or repetition_penalty gets them from the model's chat
defaults (`llmos.generation_config.chat_sampling`, as `llmos chat` and
`llmos serve` sample), listed by GET /api/tasks as "sampling" for the page to
show. Everything a request can get wrong (model id, task,
option, sampling value, schema) is a `StudioError` naming it, answered before
any streaming starts.

Models are loaded once (`load_model`) and kept (the last `MODELS_KEPT` used),
each with a continuous-batching engine of its own, reached through its
`Generator` (`serving.generator.EngineGenerator`), as the server's routes and
`llmos chat` reach theirs: two streams of one model share its batches and its
prefix cache, streams of two models run side by side. A worker thread reads
the generator's stream onto the response; a client that goes away cancels
its request at the next token. A model dropped from the cache stops its
engine once the streams still running on it end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from llmos.apps.pipelines import TASKS, Pipeline, PipelineError, pipeline, task_class
from llmos.apps.pipelines.text import TextGenerationPipeline
from llmos.apps.task_routes import MAX_NEW_TOKENS, task_card
from llmos.errors import LLMOSError
from llmos.generation import GenerationConfig, GenerationError
from llmos.generation.constrained import ConstraintError, grammar_for
from llmos.generation.service import Completion, GenerationParams
from llmos.generation_config import chat_generate_keywords, chat_sampling
from llmos.studio.models import resolve_model
from llmos.studio.paths import StudioError, quoted
from llmos.studio.settings import StudioSettings

log = logging.getLogger(__name__)

MODELS_KEPT = 2  # models held in memory at once (the side-by-side playground compares two)
SAMPLING = ("max_new_tokens", "temperature", "top_p", "top_k", "seed")
REQUEST_KEYS = ("model", "prompt", "task", "json_schema", *SAMPLING)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# ---- model ids and the models kept in memory ----------------------------------------------------

def version_key(source: str | Path) -> tuple[str, int]:
    """A cache key that changes when the checkpoint on disk is rewritten (a run's `last` is, as it trains)."""
    if isinstance(source, str):
        return source, 0
    files = (source, source / "config.json", source / "model.safetensors", source / "tokenizer.json")
    return str(source), hash(tuple((p.stat().st_mtime_ns, p.stat().st_ino) for p in files if p.exists()))


ENGINE_OPTIONS = {"max_batch": 4, "max_queue": 16, "kv_budget_bytes": 256 << 20}  # a person or two trying it
RETIRE_GRACE_S = 600.0  # a dropped model's engine lets its running streams finish for this long


@dataclass
class LoadedModel:
    generator: Any  # an EngineGenerator over the model's own engine
    tokenizer: Any
    generation_config: Any  # the model's own decoding defaults (its chat sampling), or None

    @property
    def context(self) -> int:
        return self.generator.max_len

    def retire(self) -> None:
        """Stop the engine once its running streams end (they hold the model until then)."""
        engine = self.generator.engine
        threading.Thread(target=engine.stop, kwargs={"grace": RETIRE_GRACE_S}, name="studio-retire",
                         daemon=True).start()


class ModelCache:
    """The last `size` models used, each loaded once; loads happen one at a time."""

    def __init__(self, size: int = MODELS_KEPT) -> None:
        self.size = size
        self._models: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()  # guards _models
        self._load_lock = threading.Lock()  # one load at a time: two loads of one model would both load it

    def _lookup(self, key: tuple[str, int]) -> LoadedModel | None:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            return None

    def get(self, source: str | Path, model_id: str) -> tuple[LoadedModel, bool]:
        """(the loaded model, whether it was already in memory)."""
        key = version_key(source)
        found = self._lookup(key)
        if found is not None:
            return found, True
        with self._load_lock:
            found = self._lookup(key)
            if found is not None:
                return found, True
            from llmos.generation.loading import load_model
            from llmos.serving.generator import EngineGenerator
            from llmos.serving.text import ServedTokenizer

            try:
                found = load_model(source)
            except (LLMOSError, OSError) as exc:
                raise StudioError(f"model {quoted(model_id)} cannot be loaded: {exc}", field="model") from None
            served = ServedTokenizer(found.tokenizer, None, found.stop_ids)
            loaded = LoadedModel(EngineGenerator.start(found.model, served, tools_adapter=found.tools_adapter,
                                                        **ENGINE_OPTIONS), found.tokenizer,
                                 getattr(found.model, "generation_config", None))
            with self._lock:
                dropped = [self._models.pop(k) for k in [k for k in self._models if k[0] == key[0]]]  # older saves
                self._models[key] = loaded
                while len(self._models) > self.size:
                    dropped.append(self._models.popitem(last=False)[1])
            for model in dropped:
                model.retire()
            return loaded, False


# ---- the request, checked before any model loads -----------------------------------------------

@dataclass
class GenerateJob:
    model_id: str
    source: str | Path
    task: str | None  # None: chat if the model has a chat template, else text-generation
    item: dict[str, Any]  # the task's input fields
    options: dict[str, Any]  # the task's options as given (the pipeline checks them again as it starts)
    sampling: dict[str, Any]  # generate's keywords from the request
    json_schema: dict[str, Any] | None


def streams(cls: type[Pipeline]) -> bool:
    """Whether a task decodes text (so streams it); zero-shot sentiment scores label words instead."""
    return cls.run_batch is Pipeline.run_batch or issubclass(cls, TextGenerationPipeline)


def check_sampling(body: dict[str, Any]) -> dict[str, Any]:
    """The request's decoding settings as `generate` keywords; temperature 0 means greedy."""
    sampling: dict[str, Any] = {}
    tokens = body.get("max_new_tokens")
    if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool)
                               or not 1 <= tokens <= MAX_NEW_TOKENS):
        raise StudioError(f"max_new_tokens={tokens!r} must be an integer from 1 to {MAX_NEW_TOKENS}",
                          field="max_new_tokens")
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
            raise StudioError(f"temperature={temperature!r} must be a number >= 0 (0: greedy decoding)",
                              field="temperature")
        sampling.update({"do_sample": False} if temperature == 0 else {"do_sample": True,
                                                                      "temperature": temperature})
    for name in SAMPLING:
        value = body.get(name)
        if value is None or name == "temperature":
            continue
        try:
            GenerationConfig().replace(**{name: value})  # its messages name the valid values
        except GenerationError as exc:
            raise StudioError(str(exc), field=name) from None
        sampling[name] = value
    return sampling


def check_json_schema(schema: Any) -> dict[str, Any] | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise StudioError(f"json_schema must be a JSON schema object, not {type(schema).__name__}",
                          field="json_schema")
    try:
        grammar_for(json_schema=schema)
    except ConstraintError as exc:
        raise StudioError(f"json_schema: {exc}", field="json_schema") from None
    return schema


def request_field(param: str | None, main_field: str) -> str | None:
    """The request key a pipeline error's `param` is about: "input.question" -> "question",
    "options.max_words" -> "max_words"; the task's main input field is the prompt."""
    if param is None:
        return None
    kind, _, name = param.partition(".")
    if kind == "input":
        return "prompt" if name in ("", main_field) else name
    return name or kind


def check_task_input(task: str | None, prompt: Any, extra: dict[str, Any]) -> tuple[dict, dict]:
    """(the input item, the task's options as given) from the prompt and the request's other keys."""
    if not isinstance(prompt, str):
        raise StudioError(f"prompt must be text, not {type(prompt).__name__}", field="prompt")
    cls = task_class(task or "text-generation")[0]
    allowed = [*cls.fields[1:], *cls.options] if task else []
    unknown = [name for name in extra if name not in allowed]
    if unknown:
        whose = f"the {task} task's: {', '.join(allowed) or '(none)'}" if task else "a task's (none without a task)"
        raise StudioError(f"unknown field {unknown[0]!r}; valid: {', '.join(REQUEST_KEYS)}, and {whose}",
                          field=unknown[0])
    options = {name: value for name, value in extra.items() if name in cls.options}
    if isinstance(options.get("schema"), str):
        raise StudioError(f"{task}: schema must be a JSON schema object (a server file path is not accepted)",
                          field="schema")
    try:
        item = cls.normalize({cls.fields[0]: prompt, **{k: v for k, v in extra.items() if k in cls.fields}})
        if task:
            cls.check_options({**cls.options, **options})
    except PipelineError as exc:
        message = str(exc).replace(f"input's {cls.fields[0]!r}", "prompt")
        raise StudioError(message, field=request_field(exc.param, cls.fields[0])) from None
    return item, options


def check_request(settings: StudioSettings, body: Any) -> GenerateJob:
    if not isinstance(body, dict):
        raise StudioError(f"the request body must be a JSON object, not {type(body).__name__}")
    source = resolve_model(settings, body.get("model"))
    task = body.get("task")
    if task is not None and task not in TASKS:
        raise StudioError(f"unknown task {quoted(task)}; valid tasks: {', '.join(TASKS)} (or null: the model's chat "
                          "template, or plain continuation)", field="task")
    json_schema = check_json_schema(body.get("json_schema"))
    if json_schema is not None and task is not None and not streams(task_class(task)[0]):
        raise StudioError(f"{task} scores labels instead of writing text, so json_schema does not apply",
                          field="json_schema")
    # a task option named as a sampling setting is the task's (sentiment's top_k: how many labels)
    own = set(task_class(task)[0].options) if task is not None else set()
    extra = {k: v for k, v in body.items() if k not in REQUEST_KEYS or k in own}
    item, options = check_task_input(task, body.get("prompt"), extra)
    sampling = check_sampling({k: v for k, v in body.items() if k not in own})
    return GenerateJob(body["model"], source, task, item, options, sampling, json_schema)


# ---- one run of a task on a loaded model --------------------------------------------------------

@dataclass
class TaskRun:
    task: str
    pipe: Pipeline
    item: dict[str, Any]
    options: dict[str, Any]
    prompt: list[int] | None  # token ids; None: the task does not decode text (sentiment scores its labels)
    params: GenerationParams | None


def prepare_run(job: GenerateJob, loaded: LoadedModel) -> TaskRun:
    """The pipeline's prompt, constraint and decoding for the job, checked against the model."""
    has_template = getattr(loaded.tokenizer, "chat_template", None) is not None
    task = job.task or ("chat" if has_template else "text-generation")
    if task != "text-generation" and not has_template:
        raise StudioError(f"model {job.model_id!r} has no chat template, so it cannot run the {task} task; use "
                          "text-generation (the prompt continued as it is)", field="task")
    try:
        pipe = pipeline(task, model=loaded.generator, tokenizer=loaded.tokenizer, **job.options)
        options = pipe.check_options(dict(pipe.options))
        prompt, params = None, None
        if streams(type(pipe)):
            constraint = {"json_schema": job.json_schema} if job.json_schema else pipe.constraint(job.item, options)
            sampling = job.sampling  # sampling asked for: what it leaves out is the model's chat default
            if sampling.get("do_sample"):
                sampling = {**chat_generate_keywords(loaded.generation_config, constraint is not None), **sampling}
            generation = pipe.decoding(options, {**pipe.defaults, **sampling})
            params = pipe.params(generation, constraint)
            prompt = loaded.generator.prompt_ids(pipe.prompt(job.item, options))
    except LLMOSError as exc:
        raise StudioError(str(exc), field="task") from None
    context = loaded.context
    if prompt is not None and len(prompt) >= context:
        raise StudioError(f"the prompt has {len(prompt)} tokens with the {task} task's template; model "
                          f"{job.model_id!r} reads at most {context}", field="prompt")
    return TaskRun(task, pipe, job.item, options, prompt, params)


class Cancelled(Exception):
    """The client went away; the worker stops decoding."""


def decode(run: TaskRun, loaded: LoadedModel, emit: Callable[[dict], None], cancelled: threading.Event) -> dict:
    """Run the task (streaming its text through `emit`) and return the final event."""
    start = time.perf_counter()
    if run.prompt is None:
        result = run.pipe(dict(run.item))
        text, tokens, cut = json.dumps(result), 0, False
        emit({"text": text})
    else:
        reply: Completion | None = None
        stream = loaded.generator.stream([run.prompt], run.params)
        try:
            for event in stream:
                if cancelled.is_set():
                    raise Cancelled
                if event.text:
                    emit({"text": event.text})
                reply = event.completion or reply
        finally:
            stream.close()  # a stream left early cancels its request
        result = run.pipe.parse(reply, run.item, run.options)
        text, tokens, cut = reply.text, len(reply.token_ids), reply.cut
    seconds = time.perf_counter() - start
    return {"done": True, "text": text, "tokens": tokens, "seconds": round(seconds, 4),
            "tokens_per_second": round(tokens / seconds, 2) if seconds > 0 else None, "task": run.task,
            "result": result, "cut": cut}


async def event_stream(run: TaskRun, loaded: LoadedModel, cached: bool) -> AsyncIterator[str]:
    """SSE lines from a worker thread that decodes; closing the stream (client gone) cancels it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict] = asyncio.Queue()
    cancelled = threading.Event()

    def emit(event: dict) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, event)
        except RuntimeError:  # the server's loop is closed: nobody listens any more
            cancelled.set()

    def work() -> None:
        try:
            emit({**decode(run, loaded, emit, cancelled), "cached": cached})
        except Cancelled:
            pass
        except LLMOSError as exc:
            emit({"error": {"message": str(exc)}})
        except Exception as exc:  # a bug, not bad input: say so on the stream and in the log
            log.exception("playground generation failed")
            emit({"error": {"message": f"internal error: {type(exc).__name__}: {exc}"}})

    threading.Thread(target=work, name="studio-generate", daemon=True).start()
    try:
        while True:
            event = await queue.get()
            yield f"data: {json.dumps(event)}\n\n"
            if "done" in event or "error" in event:
                return
    finally:
        cancelled.set()


# ---- the routes ---------------------------------------------------------------------------------

def router(settings: StudioSettings) -> APIRouter:
    api = APIRouter()
    models = ModelCache()

    @api.get("/api/tasks")
    def list_tasks() -> dict[str, Any]:
        cards = []
        for name in TASKS:
            cls = task_class(name)[0]
            cards.append({**task_card(name), "defaults": dict(cls.defaults), "streams": streams(cls)})
        return {"tasks": cards, "sampling": chat_sampling(None)}

    @api.post("/api/generate")
    async def generate(request: Request) -> StreamingResponse:
        try:
            body = await request.json()
        except ValueError:
            raise StudioError("the request body is not JSON; send a JSON object") from None
        except RecursionError:  # thousands of nested brackets: deeper than the JSON reader goes
            raise StudioError("the request body is JSON nested too deeply to read; send a JSON object of "
                              "the fields above") from None
        job = check_request(settings, body)
        loaded, cached = await asyncio.to_thread(models.get, job.source, job.model_id)
        run = await asyncio.to_thread(prepare_run, job, loaded)
        return StreamingResponse(event_stream(run, loaded, cached), media_type="text/event-stream",
                                 headers=SSE_HEADERS)

    return api
