"""Uploading outputs to the hub's artifact store: retries while the hub is briefly away."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from empq.errors import ConnectorError
from empq.redis_server import free_port
from empq.worker.artifacts import HubArtifacts
from tests.fakes.serving import serve


class FlakyStore:
    """An artifact endpoint that answers 503 a few times before storing."""

    def __init__(self, failures: int, final: int = 201) -> None:
        self.failures = failures
        self.final = final
        self.calls: list[dict[str, str]] = []

    async def put(self, request: Request) -> Response:
        self.calls.append({**request.headers, "raw_path": request.scope["raw_path"].decode()})
        if len(self.calls) <= self.failures:
            return JSONResponse({"error": {"code": "UNAVAILABLE"}}, status_code=503)
        if self.final != 201:
            return JSONResponse({"error": {"code": "STALE_CLAIM"}}, status_code=self.final)
        job, name = request.path_params["job"], request.path_params["name"]
        return JSONResponse({"url": f"http://hub/api/jobs/{job}/artifacts/{name}"}, 201)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/api/jobs/{job}/artifacts/{name}", self.put, methods=["PUT"])]
        )


async def test_upload_retries_a_hub_that_is_briefly_unavailable() -> None:
    store = FlakyStore(failures=2)
    async with serve(store.app()) as server, httpx.AsyncClient() as http:
        sink = HubArtifacts(http, server.url, "job 1", "tok", worker_token="wt")
        url = await sink.save("a b.png", b"png", "image/png")
    assert url == "http://hub/api/jobs/job 1/artifacts/a b.png"
    assert store.calls[-1]["raw_path"] == "/api/jobs/job%201/artifacts/a%20b.png"
    assert len(store.calls) == 3
    assert store.calls[-1]["x-empq-claim-token"] == "tok"
    assert store.calls[-1]["authorization"] == "Bearer wt"
    assert store.calls[-1]["content-type"] == "image/png"


async def test_a_refused_claim_is_a_stale_claim_not_retried() -> None:
    store = FlakyStore(failures=0, final=409)
    async with serve(store.app()) as server, httpx.AsyncClient() as http:
        with pytest.raises(ConnectorError) as info:
            await HubArtifacts(http, server.url, "j", "old").save("x", b"", "text/plain")
    assert info.value.error_type == "stale_claim"
    assert not info.value.retryable
    assert len(store.calls) == 1


async def test_an_unreachable_hub_fails_retryably_after_the_retry_window() -> None:
    async with httpx.AsyncClient() as http:
        sink = HubArtifacts(http, f"http://127.0.0.1:{free_port()}", "j", "t", retry_for=0.3)
        with pytest.raises(ConnectorError) as info:
            await sink.save("x", b"", "text/plain")
    assert info.value.error_type == "artifact_upload_failed"
    assert info.value.retryable
