"""Layer 7: the server's OpenAPI document (/openapi.json) and its Swagger UI page (/docs), offline.

The generation routes read their bodies by hand (each way a body can be wrong
gets its own message), so FastAPI cannot see their request models; each route
names its models with `json_body`, and `openapi_document` adds pydantic's own
JSON schemas of them to what FastAPI generates from the routes and response
models. /docs serves Swagger UI 5 (OpenAPI 3.1, as FastAPI writes) from the
files the `fastapi-offline` package ships, never from a CDN, so it works on a
machine without internet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from llmos.serving.responses import ErrorResponse

SCHEMA_REF = "#/components/schemas/{model}"
DOCS_ASSETS = "/docs-assets"

# One server-sent event (OpenAPI before 3.2 has a text/event-stream `schema` describe each event)
SSE_EVENT = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"type": "string", "description": "a JSON chunk of the answer, or [DONE] last"},
                   "event": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"}},
}

ERROR_DESCRIPTIONS = {
    400: "Invalid request body or parameter",
    401: "Missing or wrong API key (only when the server has one)",
    403: "A Host or Origin this server does not answer (another site's page)",
    404: "Unknown model or route",
    413: "Request body larger than the server's limit",
    415: "A body not sent as Content-Type: application/json",
    429: "Queue full: retry later",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses, all with OpenAI's error body."""
    return {s: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[s]} for s in statuses}


def streamed(description: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entry of a route whose 200 may be server-sent events."""
    return {200: {"description": description, "content": {"text/event-stream": {"schema": SSE_EVENT}}}}


def json_body(*models: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is one of `models` (read by the route itself)."""
    refs = [{"$ref": SCHEMA_REF.format(model=m.__name__)} for m in models]
    schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def openapi_document(app: FastAPI, body_models: list[type[BaseModel]]) -> dict[str, Any]:
    """FastAPI's OpenAPI document for `app`, plus the JSON schemas of the hand-read request bodies."""
    if app.openapi_schema is None:
        spec = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes)
        _, defs = models_json_schema([(m, "validation") for m in body_models], ref_template=SCHEMA_REF)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in defs.get("$defs", {}).items():
            if name in schemas and schemas[name] != schema:
                raise ValueError(f"two different schemas are both named {name!r} in the OpenAPI document")
            schemas[name] = schema
        app.openapi_schema = spec
    return app.openapi_schema


def install_docs(app: FastAPI) -> None:
    """GET /docs: Swagger UI for /openapi.json, its scripts and styles served by this server."""
    import fastapi_offline

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            oauth2_redirect_url=None)
