"""API keys for `/api/*` and tokens for workers (CONTRACT §3 and §9).

A missing key is 401, a wrong one 403. Keys are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from fastapi import Request

from empq.hub.http_errors import ApiError


def matches(candidate: str | None, allowed: Iterable[str]) -> bool:
    """Whether `candidate` equals one of `allowed` (constant time per comparison)."""
    if candidate is None:
        return False
    got = candidate.encode()
    return any(hmac.compare_digest(got, a.encode()) for a in allowed)


def bearer(request_headers: object) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    value = getattr(request_headers, "get", lambda _k: None)("authorization")
    if not isinstance(value, str):
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def check_api_key(request: Request, *, also: Iterable[str] = ()) -> None:
    """Refuse the request unless it carries a configured API key (or one of `also`)."""
    settings = request.app.state.settings
    if not settings.api_keys:
        return
    token = bearer(request.headers)
    if token is None:
        raise ApiError(401, "AUTH_REQUIRED", "missing API key: send 'Authorization: Bearer <key>'")
    if not matches(token, [*settings.api_keys, *also]):
        raise ApiError(403, "AUTH_FAILED", "API key not accepted")


async def require_api_key(request: Request) -> None:
    """FastAPI dependency for every `/api/*` route."""
    check_api_key(request)
