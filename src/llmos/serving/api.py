"""Layer 7: the FastAPI application: OpenAI-compatible routes, health, metrics, the chat page.

`create_app` wires one model + tokenizer into an `Engine` and exposes it.
Safe by default: bound to loopback, a foreign Host header is refused (DNS
rebinding) and so is a POST from another site's page, unless allowed_hosts /
allowed_origins name it (see serving/origin_guard.py; allowed origins get CORS
answers, preflights included); JSON routes take only `application/json` bodies
(415 otherwise: a form or text/plain POST needs no CORS preflight); with an
api_key every /v1 route needs `Authorization: Bearer <key>`; request bodies are
size-limited; requests name a model id, never a path; errors never leak tracebacks;
a client that leaves mid-body is one log line. Every response carries an x-request-id header
(the client's own, or a new one). /openapi.json documents the request and
response models; /docs shows it (see serving/openapi.py).
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

import llmos
from llmos.adapters import adapter_names
from llmos.errors import LLMOSError
from llmos.generation.replies import model_eos_ids
from llmos.generation_config import DEFAULT_REPLY_TOKENS, chat_sampling
from llmos.serving import routes, tokenization
from llmos.serving.engine import Engine
from llmos.serving.errors import APIError
from llmos.serving.metrics import CONTENT_TYPE
from llmos.serving.openapi import errors, install_docs, json_body, openapi_document, streamed
from llmos.serving.origin_guard import OriginGuard
from llmos.serving.responses import (
    ChatCompletionResponse,
    CompletionResponse,
    DetokenizeResponse,
    HealthResponse,
    ModelCard,
    ModelList,
    TokenizeResponse,
    VersionResponse,
)
from llmos.serving.schemas import ChatCompletionRequest, CompletionRequest
from llmos.serving.text import ServedTokenizer

STATIC_DIR = Path(__file__).parent / "static"
MAX_REQUEST_ID = 128  # longer client ids are replaced by a new one
CLIENT_CLOSED = 499  # nginx's status for a client that closed its connection before the answer
BODY_MODELS = [CompletionRequest, ChatCompletionRequest, tokenization.TokenizeCompletionRequest,
               tokenization.TokenizeChatRequest, tokenization.DetokenizeRequest]
log = logging.getLogger(__name__)


@dataclass
class ServerState:
    engine: Engine
    tokenizer: ServedTokenizer
    model_id: str
    api_key: str | None
    max_body_bytes: int
    created: int
    generation_defaults: Any  # the model's generation_config (None: it has none)
    max_tokens_default: int  # a chat reply's cap when the request gives no max_tokens
    tools_adapter: str | None = None  # the LoRA adapter the model holds for requests with tools

    @property
    def sampling(self) -> dict[str, float | int]:
        """What a chat request that names no sampling field gets (a free-text reply)."""
        return chat_sampling(self.generation_defaults)


def create_app(
    model: Any,
    tokenizer: Any,
    model_id: str = "llmos",
    api_key: str | None = None,
    max_batch: int = 16,
    max_queue: int = 64,
    max_body_bytes: int = 1 << 20,
    chat_template: str | None = None,
    host: str = "127.0.0.1",
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    max_tokens_default: int = DEFAULT_REPLY_TOKENS,
    tools_adapter: str | None = None,
    **engine_options: Any,
) -> FastAPI:
    """An app serving `model` (a CausalLM) with `tokenizer` (LLMOS or `tokenizers.Tokenizer`).

    `host` is the address the server binds (it decides the Host check); `allowed_hosts` are
    further Host names to answer, `allowed_origins` the web origins (scheme://host[:port], or
    "*") whose pages may POST and read answers (CORS). A chat request without max_tokens gets at most
    `max_tokens_default` tokens; sampling fields it leaves out come from the model's
    generation_config, else (when it names none) LLMOS's chat defaults (`chat_sampling`), see
    serving/routes.py. `tools_adapter` names a LoRA adapter `model` holds (inactive): chat requests
    with tools decode through it, every other request through the base model, in the same batches.
    engine_options go to `Engine` (e.g. kv_budget_bytes, chunk_tokens)."""
    if max_tokens_default < 1:
        raise LLMOSError(f"max_tokens_default={max_tokens_default} must be at least 1")
    if tools_adapter is not None and tools_adapter not in adapter_names(model):
        raise LLMOSError(f"tools_adapter={tools_adapter!r}: the model holds no such adapter "
                         f"(it holds {adapter_names(model) or 'none'})")
    origins = OriginGuard(host, "server", tuple(allowed_hosts), tuple(allowed_origins), advise_flags=True)
    served = tokenizer if isinstance(tokenizer, ServedTokenizer) else ServedTokenizer(
        tokenizer, chat_template, model_eos_ids(model))
    engine = Engine(model, max_batch=max_batch, max_queue=max_queue, **engine_options)
    state = ServerState(engine, served, model_id, api_key, max_body_bytes, int(time.time()),
                        getattr(model, "generation_config", None), max_tokens_default, tools_adapter)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title="LLMOS", version=llmos.__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url="/openapi.json",
                  description="An OpenAI-compatible server for one model, run by LLMOS.")
    app.state.llmos = state
    app.openapi = lambda: openapi_document(app, BODY_MODELS)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        request.state.request_id = request_id = _request_id(request)
        refused = origins.refusal(request.method, request.headers.get("host"), request.headers.get("origin"),
                                  request.url.port)
        if refused is not None:
            response: Response = APIError(403, refused, code="forbidden_origin").response()
        elif path.startswith("/v1") and api_key is not None and not _authorized(request, api_key):
            response = APIError(401, "Incorrect or missing API key: send 'Authorization: Bearer "
                                "<key>'", code="invalid_api_key").response()
        else:
            try:
                response = await call_next(request)
            except APIError as exc:  # raised before a streaming body began
                response = exc.response()
            except ClientDisconnect:  # the client left before its whole body came: nobody to answer
                log.warning("request %s: the client disconnected before sending its whole body (%s %s)",
                            request_id, request.method, path)
                response = Response(status_code=CLIENT_CLOSED)
            except Exception as exc:  # answered here: the keep-alive connection stays usable, the
                log.exception("request %s failed: %s %s", request_id, request.method, path)
                response = _internal_error(exc)  # 500 is counted and carries the request id
        response.headers["x-request-id"] = request_id
        engine.metrics.http_response(_route_label(path), response.status_code)
        return response

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = "Not found: no route " + request.url.path if exc.status_code == 404 else str(exc.detail)
        if exc.status_code == 405 and exc.headers:
            message = f"Method {request.method} is not allowed on {request.url.path}; use {exc.headers['Allow']}"
        return APIError(exc.status_code, message, headers=exc.headers).response()  # 405 keeps Allow

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal_error(exc)

    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_id, "running": len(engine.rows),
                "waiting": len(engine.waiting)}

    @app.get("/version", response_model=VersionResponse)
    async def version() -> dict[str, Any]:
        return {"version": llmos.__version__}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus text exposition."""
        return PlainTextResponse(engine.metrics.render(), media_type=CONTENT_TYPE)

    def model_card() -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": state.created, "owned_by": "llmos",
                "max_model_len": engine.max_len,
                "defaults": {**state.sampling, "max_tokens": state.max_tokens_default}}

    @app.get("/v1/models", response_model=ModelList, responses=errors(401))
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}", response_model=ModelCard, responses=errors(401, 404))
    async def get_model(name: str) -> dict[str, Any]:
        if name != model_id:
            raise APIError(404, f"The model '{name}' does not exist", param="model", code="model_not_found")
        return model_card()

    generation_errors = {**streamed("The answer; with stream: true, server-sent events of chunks"),
                         **errors(400, 401, 403, 404, 413, 415, 429)}
    app.post("/v1/completions", response_model=CompletionResponse, responses=generation_errors,
             openapi_extra=json_body(CompletionRequest))(routes.completions)
    app.post("/v1/chat/completions", response_model=ChatCompletionResponse, responses=generation_errors,
             openapi_extra=json_body(ChatCompletionRequest))(routes.chat_completions)
    app.post("/tokenize", response_model=TokenizeResponse, responses=errors(400, 403, 404, 413, 415),
             openapi_extra=json_body(tokenization.TokenizeCompletionRequest,
                                     tokenization.TokenizeChatRequest))(tokenization.tokenize)
    app.post("/detokenize", response_model=DetokenizeResponse, responses=errors(400, 403, 404, 413, 415),
             openapi_extra=json_body(tokenization.DetokenizeRequest))(tokenization.detokenize)
    install_docs(app)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if origins.allowed_origins:  # outside the guard: it answers preflights, and adds its headers to refusals
        app.add_middleware(CORSMiddleware, allow_origins=list(origins.allowed_origins),
                           allow_methods=["GET", "POST"], allow_headers=["*"], expose_headers=["x-request-id"])
    return app


def _internal_error(exc: Exception) -> JSONResponse:
    return APIError(500, f"internal server error ({type(exc).__name__})").response()


def _authorized(request: Request, api_key: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def _request_id(request: Request) -> str:
    """The client's x-request-id when it sent a usable one, else a new random id."""
    sent = request.headers.get("x-request-id", "").strip()
    return sent if 0 < len(sent) <= MAX_REQUEST_ID and sent.isprintable() else uuid.uuid4().hex


def _route_label(path: str) -> str:
    known = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "/tokenize",
             "/detokenize", "/version", "/openapi.json", "/docs")
    return next((k for k in known if path.startswith(k)), "/" if path == "/" else "other")
