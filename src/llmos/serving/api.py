"""Layer 7: the FastAPI application: OpenAI-compatible routes, health, metrics, the chat page.

`create_app` wires one model + tokenizer into an `Engine` and exposes it.
Safe by default: with an api_key every /v1 route needs `Authorization:
Bearer <key>`; request bodies are size-limited; requests name a model id,
never a path; errors never leak tracebacks.
"""

from __future__ import annotations

import hmac
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmos.serving import routes
from llmos.serving.engine import Engine
from llmos.serving.errors import APIError
from llmos.serving.text import ServedTokenizer

STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


@dataclass
class ServerState:
    engine: Engine
    tokenizer: ServedTokenizer
    model_id: str
    api_key: str | None
    max_body_bytes: int
    created: int


def create_app(
    model: Any,
    tokenizer: Any,
    model_id: str = "llmos",
    api_key: str | None = None,
    max_batch: int = 16,
    max_queue: int = 64,
    max_body_bytes: int = 1 << 20,
    chat_template: str | None = None,
    **engine_options: Any,
) -> FastAPI:
    """An app serving `model` (a CausalLM) with `tokenizer` (LLMOS or `tokenizers.Tokenizer`).

    engine_options go to `Engine` (e.g. prefill_min_batch, prefill_max_wait_steps)."""
    served = tokenizer if isinstance(tokenizer, ServedTokenizer) else ServedTokenizer(
        tokenizer, chat_template, model.config.eos_token_ids)
    engine = Engine(model, max_batch=max_batch, max_queue=max_queue, **engine_options)
    state = ServerState(engine, served, model_id, api_key, max_body_bytes, int(time.time()))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title="LLMOS", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.llmos = state

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        if path.startswith("/v1") and api_key is not None and not _authorized(request, api_key):
            response: Response = APIError(401, "Incorrect or missing API key: send 'Authorization: Bearer "
                                          "<key>'", code="invalid_api_key").response()
        else:
            try:
                response = await call_next(request)
            except APIError as exc:  # raised before a streaming body began
                response = exc.response()
            except Exception as exc:  # answered here, so the keep-alive connection stays usable
                log.exception("unhandled error on %s %s", request.method, path)
                response = _internal_error(exc)
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

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_id, "running": len(engine.rows),
                "waiting": len(engine.waiting)}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(engine.metrics.render(), media_type="text/plain; version=0.0.4")

    def model_card() -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": state.created, "owned_by": "llmos",
                "max_model_len": engine.max_len}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str) -> dict[str, Any]:
        if name != model_id:
            raise APIError(404, f"The model '{name}' does not exist", param="model", code="model_not_found")
        return model_card()

    app.post("/v1/completions")(routes.completions)
    app.post("/v1/chat/completions")(routes.chat_completions)

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _internal_error(exc: Exception) -> JSONResponse:
    return APIError(500, f"internal server error ({type(exc).__name__})").response()


def _authorized(request: Request, api_key: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def _route_label(path: str) -> str:
    known = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics")
    return next((k for k in known if path.startswith(k)), "/" if path == "/" else "other")
