"""How the SDK turns hub replies into exceptions, and which calls it repeats after a dropped
connection (a real TCP server that hangs up on every request counts the attempts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from empq.errors import AuthError, EmpqError, HubUnavailable, JobNotFound, ValidationError
from empq.sdk import AsyncClient
from empq.sdk.transport import normalise_hub_url, raise_for_reply


def reply(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("GET", "http://hub/api/x"))


def error(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


@pytest.mark.parametrize("status", [401, 403])
def test_refused_keys_raise_auth_error(status: int) -> None:
    with pytest.raises(AuthError):
        raise_for_reply(reply(status, error("AUTH_REQUIRED", "missing API key")))


def test_422_lists_every_bad_field() -> None:
    details = [
        {"field": "priority", "message": "must be <= 100"},
        {"field": "requirements.hardware.gpu_memory_gb", "message": "not a number"},
    ]
    with pytest.raises(ValidationError) as caught:
        raise_for_reply(reply(422, error("VALIDATION_ERROR", "invalid request", details)))
    assert [e["field"] for e in caught.value.errors] == [
        "priority",
        "requirements.hardware.gpu_memory_gb",
    ]
    assert "requirements.hardware.gpu_memory_gb" in str(caught.value)


def test_404_about_a_job_names_it() -> None:
    with pytest.raises(JobNotFound) as caught:
        raise_for_reply(reply(404, error("JOB_NOT_FOUND", "no")), job_id="j-9")
    assert caught.value.job_id == "j-9"


def test_503_is_hub_unavailable_and_500_keeps_the_hubs_code() -> None:
    with pytest.raises(HubUnavailable):
        raise_for_reply(reply(503, error("UNAVAILABLE", "redis down")))
    with pytest.raises(EmpqError) as caught:
        raise_for_reply(reply(500, error("INTERNAL_ERROR", "internal error")))
    assert caught.value.code == "INTERNAL_ERROR"
    assert "internal error" in str(caught.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://hub:3001/", "http://hub:3001"),
        ("hub:3001", "http://hub:3001"),
        ("https://queue.example.com", "https://queue.example.com"),
    ],
)
def test_hub_urls_are_normalised(given: str, expected: str) -> None:
    assert normalise_hub_url(given) == expected


def test_a_non_http_hub_url_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        normalise_hub_url("ws://hub:3002")


@dataclass
class HangUp:
    """A TCP server that closes every connection at once; counts them."""

    url: str
    connections: int = 0


@pytest.fixture
async def hang_up() -> AsyncIterator[HangUp]:
    state = HangUp(url="")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield state


Call = Callable[[AsyncClient], Awaitable[Any]]


@pytest.mark.parametrize(
    ("call", "attempts"),
    [
        pytest.param(lambda c: c.get("j1"), 3, id="get is retried"),
        pytest.param(lambda c: c.submit(type="t", idempotency_key="k"), 3, id="keyed submit"),
        pytest.param(lambda c: c.submit(type="t"), 1, id="plain submit is not retried"),
        pytest.param(lambda c: c.cancel("j1"), 1, id="cancel is not retried"),
    ],
)
async def test_only_calls_safe_to_repeat_are_retried(
    hang_up: HangUp, call: Call, attempts: int
) -> None:
    async with AsyncClient(hang_up.url, retries=2) as client:
        with pytest.raises(HubUnavailable):
            await call(client)
    assert hang_up.connections == attempts
