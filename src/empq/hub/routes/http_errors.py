"""Every REST error as `{"error": {"code", "message", "details"}}` (CONTRACT §3).

FastAPI's own 422 for a bad body or query is rewritten so that `details` names
each bad field (`requirements.priority`, `query.limit`) and the message lists them.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from empq import errors

log = logging.getLogger("empq.hub.http")

_STATUS_CODES: dict[type[errors.EmpqError], int] = {
    errors.ValidationError: 422,
    errors.JobNotFound: 404,
    errors.WorkerNotFound: 404,
    errors.InvalidTransition: 409,
    errors.StaleClaim: 409,
    errors.AuthError: 401,
    errors.Forbidden: 403,
    errors.CustomerNotFound: 404,
    errors.RateLimited: 429,
    errors.HubUnavailable: 503,
}

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "AUTH_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    503: "UNAVAILABLE",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The contract's error shape."""
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON error reply."""
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


class ApiError(Exception):
    """An error a route raises with its HTTP status and contract code."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """One `{field, message}` per problem, the field path without FastAPI's `body.` prefix."""
    out: list[dict[str, str]] = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ())]
        if loc and loc[0] == "body":
            loc = loc[1:]
        out.append({"field": ".".join(loc) or "(body)", "message": str(e.get("msg", "invalid"))})
    return out


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = field_errors(exc)
    fields = ", ".join(dict.fromkeys(d["field"] for d in details))
    return error_response(422, "VALIDATION_ERROR", f"invalid request: bad fields {fields}", details)


async def _empq(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.EmpqError)
    status = next((s for t, s in _STATUS_CODES.items() if isinstance(exc, t)), 400)
    headers = None
    if isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return error_response(status, exc.code, exc.message, exc.details, headers)


async def _api(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), None, headers)


async def _storage(request: Request, exc: Exception) -> JSONResponse:
    log.warning("redis error on %s %s: %s", request.method, request.url.path, exc)
    # Redis's own text (script SHAs, internals) stays in the hub's log.
    return error_response(503, "UNAVAILABLE", "queue storage unavailable; try again")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "INTERNAL_ERROR", "internal error; see the hub log")


_HANDLERS: tuple[tuple[type[Exception], Any], ...] = (
    (RequestValidationError, _validation),
    (errors.EmpqError, _empq),
    (ApiError, _api),
    (StarletteHTTPException, _http),
    (RedisError, _storage),
    (Exception, _unexpected),
)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the contract's shape."""
    for exc_type, handler in _HANDLERS:
        app.add_exception_handler(exc_type, handler)


async def response_for(request: Request, exc: Exception) -> JSONResponse:
    """The reply the installed handlers give `exc` (for code outside FastAPI's routing)."""
    handler = next(h for t, h in _HANDLERS if isinstance(exc, t))
    response: JSONResponse = await handler(request, exc)
    return response
