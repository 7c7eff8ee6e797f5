"""Layer 8b: the studio's FastAPI app: its routers, static page, errors and the guard in front of them.

The guard, on every route (page, static files, API, SSE):
- Host and Origin, the checks `llmos serve` makes too (serving/origin_guard.py): when bound to
  a loopback address, the Host header must name loopback, so a web page on another name that
  resolves to 127.0.0.1 (DNS rebinding) cannot reach the studio; a POST whose Origin is not
  this host and port is refused too (another site's form or script, another local server).
- API key (when set): `Authorization: Bearer KEY` or the `llmos_studio_key` cookie,
  which `GET /?key=KEY` sets (HttpOnly, SameSite=Strict) before redirecting to `/`;
  without it the page answers 401 with a line saying to open `/?key=...`. A wrong key
  in that link is the same 401 and sets nothing, so a link on another site cannot
  replace a good cookie (a cross-site logout).
Errors are `{"error": {"message", "field"}}` with the status the StudioError carries.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import llmos
from llmos.serving.origin_guard import OriginGuard
from llmos.studio import datasets, playground, routes_models, routes_runs
from llmos.studio.paths import StudioError
from llmos.studio.settings import StudioSettings

log = logging.getLogger("llmos.studio")
STATIC_DIR = Path(__file__).parent / "static"
COOKIE = "llmos_studio_key"
PLACEHOLDER_PAGE = "<!doctype html><title>LLMOS Studio</title><p>LLMOS Studio: the API is at /api/runs."
KEY_PAGE = ("<!doctype html><title>LLMOS Studio</title><p>This studio needs its key: open "
            "<code>/?key=KEY</code> with the key given to <code>llmos studio --api-key</code>.")


def create_app(settings: StudioSettings) -> FastAPI:
    settings = settings.resolved()
    app = FastAPI(title="LLMOS Studio", version=llmos.__version__, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    origins = OriginGuard(settings.host, owner="studio")

    @app.middleware("http")
    async def guard(request: Request, call_next) -> Response:
        refusal = _refusal(request, settings, origins)
        if refusal is not None:
            return refusal
        return await call_next(request)

    @app.exception_handler(StudioError)
    async def studio_error(request: Request, exc: StudioError) -> JSONResponse:
        return error_response(str(exc), exc.status, exc.field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = f"no route {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        return error_response(message, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return error_response(f"bad request: {first.get('msg', 'invalid body')}", 400, field)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("studio request failed: %s %s", request.method, request.url.path)
        return error_response(f"internal error: {type(exc).__name__}: {exc}", 500)

    @app.get("/", include_in_schema=False)
    def page(request: Request) -> Response:
        key = request.query_params.get("key")
        if settings.api_key is not None and key is not None:
            if not _is_key(key, settings.api_key):  # a link elsewhere must not replace a good cookie
                return HTMLResponse(KEY_PAGE, status_code=401)
            redirect = RedirectResponse("/", status_code=303)
            redirect.set_cookie(COOKIE, key, httponly=True, samesite="strict")
            return redirect
        index = STATIC_DIR / "index.html"
        return FileResponse(index) if index.is_file() else HTMLResponse(PLACEHOLDER_PAGE)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_bundle() -> FileResponse:
        import plotly

        return FileResponse(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                            media_type="text/javascript")

    app.include_router(routes_runs.router(settings))
    app.include_router(routes_models.router(settings))
    app.include_router(playground.router(settings))
    app.include_router(datasets.router(settings))
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def error_response(message: str, status: int, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "field": field}}, status_code=status)


def _refusal(request: Request, settings: StudioSettings, origins: OriginGuard) -> Response | None:
    """The answer to a request the guard refuses (see the module docstring), or None."""
    refused = origins.refusal(request.method, request.headers.get("host"), request.headers.get("origin"),
                              request.url.port or settings.port)
    if refused is not None:
        return error_response(refused, 403)
    if settings.api_key is None or _has_key(request, settings.api_key):
        return None
    if request.url.path == "/":
        if _is_key(request.query_params.get("key", ""), settings.api_key):
            return None  # the page route turns it into the cookie
        return HTMLResponse(KEY_PAGE, status_code=401)
    return error_response("missing or wrong key: send 'Authorization: Bearer KEY' or open /?key=KEY", 401)


def _has_key(request: Request, key: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    sent = token.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE, "")
    return _is_key(sent, key)


def _is_key(given: str, key: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), key.encode())

