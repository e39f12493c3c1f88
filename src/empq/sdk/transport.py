"""HTTP to the hub: one place that retries safe calls and turns replies into exceptions.

Every reply that is not a success becomes an `empq.errors` exception carrying what
the hub said, so callers never look at status codes.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import httpx

from empq.errors import (
    AuthError,
    EmpqError,
    HubUnavailable,
    InvalidTransition,
    JobNotFound,
    ValidationError,
    WorkerNotFound,
)

#: Seconds before retry n of a safe call (jitter is added on top).
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)


def normalise_hub_url(hub_url: str) -> str:
    """`http://host:3001` form without a trailing slash; a bare `host:port` gets `http://`."""
    url = hub_url.strip().rstrip("/")
    if not url:
        raise ValidationError("hub URL is empty", [{"field": "hub_url", "message": "empty"}])
    if "://" not in url:
        url = f"http://{url}"
    if not url.startswith(("http://", "https://")):
        raise ValidationError(
            f"hub URL must start with http:// or https://, got {hub_url!r}",
            [{"field": "hub_url", "message": "must be an http:// or https:// URL"}],
        )
    return url


def ws_url_for(hub_url: str) -> str:
    """The hub's WebSocket endpoint on its REST port (`/ws`)."""
    scheme, rest = hub_url.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws"


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The `Authorization` header for an API key, if any."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _error_body(response: httpx.Response) -> tuple[str | None, str, Any]:
    """(code, message, details) from the hub's `{"error": {...}}` reply, tolerating others."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text.strip()[:200] or response.reason_phrase, None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return (
            err.get("code"),
            str(err.get("message") or response.reason_phrase),
            err.get("details"),
        )
    if isinstance(body, dict) and "detail" in body:  # FastAPI's own shape
        return None, str(body["detail"]), body["detail"]
    return None, response.reason_phrase, body


def _field_errors(details: Any) -> list[dict[str, Any]]:
    """The hub's 422 details as a list of {field, message}."""
    if isinstance(details, list):
        found: list[dict[str, Any]] = []
        for item in details:
            if isinstance(item, dict):
                field = item.get("field")
                if field is None and isinstance(item.get("loc"), list):
                    field = ".".join(str(p) for p in item["loc"] if p != "body")
                found.append({"field": field, "message": item.get("message", item.get("msg"))})
        return found
    if isinstance(details, dict) and isinstance(details.get("errors"), list):
        return _field_errors(details["errors"])
    return []


def _conflict(job_id: str, message: str, details: Any) -> InvalidTransition:
    """The hub's 409 as `InvalidTransition`, keeping its own wording."""
    current = details.get("status") if isinstance(details, dict) else None
    if current is None:  # the hub says "cannot cancel job 'x': it is completed"
        found = re.search(r"it is (\w+)", message)
        current = found.group(1) if found else "in a state that forbids it"
    action = re.match(r"cannot (\w+)", message)
    exc = InvalidTransition(job_id, str(current), action.group(1) if action else "change")
    exc.message = message
    exc.args = (message,)
    return exc


def raise_for_reply(
    response: httpx.Response, *, job_id: str | None = None, worker_id: str | None = None
) -> None:
    """Raise the `EmpqError` subclass that fits a non-2xx hub reply."""
    if response.is_success:
        return
    code, message, details = _error_body(response)
    status = response.status_code
    if status in (401, 403):
        raise AuthError(f"hub refused the API key ({status}): {message}", details=details)
    if status == 404 and job_id is not None:
        raise JobNotFound(job_id)
    if status == 404 and worker_id is not None:
        raise WorkerNotFound(worker_id)
    if status in (400, 422):
        errors = _field_errors(details)
        if errors and "field" not in message:
            fields = ", ".join(str(e["field"]) for e in errors)
            message = f"{message} (fields: {fields})"
        raise ValidationError(message, errors)
    if status == 409 and job_id is not None:
        raise _conflict(job_id, message, details)
    if status in (502, 503, 504):
        raise HubUnavailable(f"hub unavailable ({status}): {message}", details=details)
    err = EmpqError(f"hub replied {status}: {message}", details=details)
    if code:
        err.code = code
    raise err


class Transport:
    """An `httpx.AsyncClient` bound to one hub, with retries for calls safe to repeat."""

    def __init__(
        self,
        hub_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = len(RETRY_DELAYS),
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.hub_url = normalise_hub_url(hub_url)
        self.api_key = api_key
        self.retries = retries
        self._http = http or httpx.AsyncClient(
            base_url=self.hub_url, headers=auth_headers(api_key), timeout=timeout
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        safe: bool = False,
        job_id: str | None = None,
        worker_id: str | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON body of a 2xx reply.

        `safe=True` marks a call that may be repeated without effect (a GET, or a
        submit carrying an idempotency key): only those are retried when the
        connection fails, with exponential back-off and jitter.
        """
        attempts = 1 + (self.retries if safe else 0)
        for attempt in range(attempts):
            try:
                response = await self._http.request(method, path, json=json, params=params)
            except httpx.TransportError as exc:
                if attempt + 1 >= attempts:
                    raise HubUnavailable(
                        f"hub at {self.hub_url} is unreachable: {_describe(exc)}"
                    ) from exc
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                await asyncio.sleep(delay * (1 + random.random()))
                continue
            if response.status_code == 503 and safe and attempt + 1 < attempts:
                await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
                continue
            raise_for_reply(response, job_id=job_id, worker_id=worker_id)
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise EmpqError(f"hub sent a reply that is not JSON to {method} {path}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_bytes(self, url: str) -> bytes:
        """Download a URL the hub handed out (an artifact), through the same auth."""
        try:
            response = await self._http.get(url)
        except httpx.TransportError as exc:
            raise HubUnavailable(f"hub at {self.hub_url} is unreachable: {_describe(exc)}") from exc
        raise_for_reply(response)
        return response.content

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
