"""API keys for `/api/*` and tokens for workers (CONTRACT §3, §9 and §10).

A missing key is 401, a wrong one 403. Keys are compared in constant time. The key a
request presented is its *principal* (`request.state.api_key`): an operator key opens
every route; a customer key only the routes of `CUSTOMER_ROUTES`, and only its own
jobs there (`scoping`).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from fastapi import Request

from empq.credentials import OPEN_ACCESS, ApiKey, find_api_key
from empq.hub.routes.http_errors import ApiError

#: Path prefixes a customer key may call; every other `/api/*` route is operator-only,
#: so a route added later is closed to customers until it is scoped.
CUSTOMER_ROUTES = ("/api/jobs", "/api/webhooks", "/api/usage", "/api/whoami")


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


def customer_may_call(path: str) -> bool:
    """Whether a customer key may call this path at all."""
    return any(path == p or path.startswith(p + "/") for p in CUSTOMER_ROUTES)


def check_api_key(request: Request, *, also: Iterable[str] = ()) -> ApiKey:
    """The key the request presents, or refused (also accepting one of the secrets `also`)."""
    settings = request.app.state.settings
    if not settings.api_keys:
        request.state.api_key = OPEN_ACCESS
        return OPEN_ACCESS
    token = bearer(request.headers)
    if token is None:
        raise ApiError(401, "AUTH_REQUIRED", "missing API key: send 'Authorization: Bearer <key>'")
    key = find_api_key(token, settings.api_key_entries)
    if key is None:
        if not matches(token, also):
            raise ApiError(403, "AUTH_FAILED", "API key not accepted")
        key = OPEN_ACCESS  # a worker token where one is accepted (artifact upload)
    if not key.is_operator and not customer_may_call(request.url.path):
        raise ApiError(403, "FORBIDDEN", "this route needs an operator key")
    request.state.api_key = key
    return key


async def require_api_key(request: Request) -> None:
    """FastAPI dependency for every `/api/*` route."""
    check_api_key(request)


def api_key_of(request: Request) -> ApiKey:
    """The principal `require_api_key` found for this request."""
    key: ApiKey = getattr(request.state, "api_key", None) or check_api_key(request)
    return key
