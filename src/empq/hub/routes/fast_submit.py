"""`POST /api/jobs` without FastAPI's per-request machinery, when nothing is wrong with it.

Submitting one job is the start of every dispatch, and FastAPI's path through its
middleware, dependency solving and body parsing costs about half a millisecond here,
as much as the rest of the submission. This ASGI wrapper, around the whole app on
the REST port (`app.serving_app`, outside Starlette's middleware stack too), answers
a well-formed submission itself: JSON body, API key accepted (or none configured),
a body that `JobSubmission` validates. It calls the same `api_jobs.submit_reply` the FastAPI route
calls, so the reply is the same. Anything else, every error included, goes on to
FastAPI with the body it already read, so validation and auth errors keep exactly the
shape and wording of the documented route (which also stays in the OpenAPI schema).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from empq.credentials import find_api_key
from empq.hub.auth import bearer
from empq.hub.routes import http_errors
from empq.hub.routes.api_jobs import submit_reply
from empq.models import JobSubmission

if TYPE_CHECKING:
    from fastapi import FastAPI

    from empq.hub.runtime import Hub

PATHS = frozenset({"/api/jobs", "/api/jobs/"})


class FastSubmit:
    """ASGI middleware in front of the hub app: the happy path of `POST /api/jobs`."""

    def __init__(self, app: ASGIApp, main: FastAPI) -> None:
        self.app = app
        self.main = main

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in PATHS
            or not hasattr(self.main.state, "hub")
        ):
            await self.app(scope, receive, send)
            return
        hub: Hub = self.main.state.hub
        headers = Headers(scope=scope)
        body, complete = await _read_body(receive, hub.settings.max_message_bytes)
        sub = None
        if (
            complete
            and headers.get("content-type", "").split(";")[0].strip() == "application/json"
            and _authorised(hub, headers)
        ):
            try:
                sub = JobSubmission.model_validate_json(body)
            except ValidationError:
                sub = None
        if sub is None:
            await self.app(scope, _replay(body, complete, receive), send)
            return
        response: Response
        try:
            status, reply = await submit_reply(hub, sub)
            response = JSONResponse(reply, status_code=status)
        except Exception as exc:  # noqa: BLE001 - answered as the FastAPI route would
            response = await http_errors.response_for(Request(scope), exc)
        await response(scope, receive, send)


def _authorised(hub: Hub, headers: Headers) -> bool:
    # Only an operator key takes the fast path; a customer key's submission goes
    # through the route, which scopes it.
    if not hub.settings.api_keys:
        return True
    key = find_api_key(bearer(headers), hub.settings.api_key_entries)
    return key is not None and key.is_operator


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The request body, and whether it is all there (False past `limit` bytes)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A `receive` that gives the body read so far, then what the client still sends."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        message: Any = await receive()
        return message  # type: ignore[no-any-return]

    return replay
