"""Layer 7: OpenAI-shaped errors and careful request-body reading.

Every failure leaves as {"error": {"message", "type", "param", "code"}} with
the status OpenAI would use: 400 invalid input, 401 bad key, 404 unknown
model or route, 413 body too large, 429 queue full. Bodies are read by hand
(size limit while streaming in, UTF-8, JSON object, then the pydantic model)
so each way a body can be wrong gets its own clear message, never a 500.
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
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": ERROR_TYPES.get(self.status, "api_error"),
                          "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


async def read_json_body(request: Request, schema: type[Model], max_bytes: int) -> Model:
    """The request body as `schema`, or an APIError saying exactly what is wrong with it."""
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
    if not isinstance(data, dict):
        raise APIError(400, f"the request body must be a JSON object, got {type(data).__name__}",
                       code="invalid_json")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


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
    shown = json.dumps(value)[:80] if _jsonable(value) else repr(value)[:80]
    message = first["msg"].removeprefix("Value error, ")
    return APIError(400, f"Invalid value for '{where}': {message} (got {shown}).", param=param,
                    code="invalid_value")


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _too_large(max_bytes: int) -> APIError:
    return APIError(413, f"the request body is larger than this server's limit of {max_bytes} bytes",
                    code="request_too_large")
