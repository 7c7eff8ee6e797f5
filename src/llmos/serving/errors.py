"""Layer 7: OpenAI-shaped errors and careful request-body reading.

Every failure leaves as {"error": {"message", "type", "param", "code"}} with
the status OpenAI would use: 400 invalid input, 401 bad key, 403 a foreign
Host or Origin, 404 unknown model or route, 413 body too large, 415 a body
that is not `application/json`, 429 queue full (with Retry-After). Bodies
are read by hand (the content type, a size limit while streaming in, UTF-8, JSON no deeper than
`MAX_JSON_DEPTH`, a JSON object, strings that are valid Unicode, then the
pydantic model) so each way a body can be wrong gets its own clear message,
never a 500.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


MAX_JSON_DEPTH = 64  # arrays/objects inside each other; real requests stay far below


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": ERROR_TYPES.get(self.status, "api_error"),
                          "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


async def read_json_body(request: Request, schema: type[Model], max_bytes: int) -> Model:
    """The request body as `schema`, or an APIError saying exactly what is wrong with it.

    Only `application/json` is read: a web page can POST a form or text/plain to any server
    without asking first (no CORS preflight), so parsing those as JSON would let any site drive it."""
    kind = request.headers.get("content-type")
    if kind is None or kind.split(";")[0].strip().lower() != "application/json":
        shown = "no Content-Type" if kind is None else f"Content-Type {kind!r}"
        raise APIError(415, f"the request body must be JSON sent with Content-Type: application/json, "
                       f"got {shown}", code="unsupported_media_type")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(400, f"the request body is not valid UTF-8 (byte {exc.start}); send UTF-8 JSON",
                       code="invalid_encoding") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                       f"column {exc.colno}", code="invalid_json") from None
    except RecursionError:
        raise _too_deep() from None
    if not isinstance(data, dict):
        raise APIError(400, f"the request body must be a JSON object, got {type(data).__name__}",
                       code="invalid_json")
    _check_strings_and_depth(data)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


class FieldProblem(ValueError):
    """A check across fields that is about one of them: the 400 names `param`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def validation_error(exc: ValidationError) -> APIError:
    """The first validation problem, phrased like OpenAI's 400s, naming the parameter."""
    first = exc.errors()[0]
    location = [str(part) for part in first.get("loc", ())]
    param = location[0] if location else None
    where = ".".join(location)
    if first["type"] == "extra_forbidden":
        return APIError(400, f"Unrecognized request argument supplied: {where}", param=param,
                        code="unknown_parameter")
    if first["type"] == "missing":
        return APIError(400, f"Missing required parameter: '{where}'.", param=param,
                        code="missing_required_parameter")
    value = first.get("input")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "model_type":  # pydantic's words name its own class, not the JSON wanted
        message = "Input should be a JSON object"
    if not location:  # a check across fields: the error names the field it is about
        problem = first.get("ctx", {}).get("error")
        param = where = getattr(problem, "param", None)
        if where is None:
            return APIError(400, f"Invalid request: {message}.", code="invalid_value")
        value = value.get(where) if isinstance(value, dict) else None
    shown = json.dumps(value)[:80] if _jsonable(value) else repr(value)[:80]
    return APIError(400, f"Invalid value for '{where}': {message} (got {shown}).", param=param,
                    code="invalid_value")


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _check_strings_and_depth(data: dict[str, Any]) -> None:
    """Walk the parsed body (without recursion): nesting depth, and strings that cannot be encoded.
    JSON's \\uXXXX escapes can spell a lone UTF-16 surrogate, which no tokenizer can encode."""
    pending: list[tuple[Any, str, int]] = [(value, key, 1) for key, value in data.items()]
    pending += [(key, key, 1) for key in data]
    while pending:
        value, where, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                top = where.split(".")[0].split("[")[0]
                raise APIError(400, f"Invalid value for '{where}': the string has a lone UTF-16 surrogate "
                               f"({value[exc.start]!r}) at character {exc.start}, which is not valid "
                               "Unicode; send well-formed text", param=top, code="invalid_value") from None
        elif isinstance(value, dict):
            for key, item in value.items():
                pending += [(item, f"{where}.{key}", depth + 1), (key, where, depth + 1)]
        elif isinstance(value, list):
            pending += [(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]


def _too_deep() -> APIError:
    return APIError(400, f"the request body is nested too deeply: JSON arrays and objects may be nested "
                    f"at most {MAX_JSON_DEPTH} levels here", code="invalid_json")


def _too_large(max_bytes: int) -> APIError:
    return APIError(413, f"the request body is larger than this server's limit of {max_bytes} bytes",
                    code="request_too_large")
