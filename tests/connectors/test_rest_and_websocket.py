"""`rest_sync`, `rest_async` and `websocket` against small real services."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from empq.connectors.rest import RestAsyncConnector, RestSyncConnector
from empq.connectors.websocket import WebSocketConnector
from empq.errors import ConnectorError
from empq.redis_server import free_port
from tests.connectors.conftest import Progress, make_job
from tests.fakes.serving import RunningServer, serve


class Service:
    """A tiny HTTP + WebSocket service with remote jobs that advance one step per poll."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.cancelled: list[str] = []
        self.ws_cancelled = asyncio.Event()
        self.polls = 0

    async def echo(self, request: Request) -> Response:
        body = await request.json()
        if body.get("boom"):
            return PlainTextResponse("exploded", status_code=503)
        if body.get("bad"):
            return JSONResponse({"detail": "bad field"}, status_code=400)
        return JSONResponse({"echo": body, "auth": request.headers.get("x-key")})

    async def submit(self, request: Request) -> Response:
        body = await request.json()
        job_id = f"r{len(self.jobs) + 1}"
        self.jobs[job_id] = {
            "step": 0,
            "fail": body.get("fail", False),
            "steps": body.get("steps", 3),
        }
        return JSONResponse(
            {"id": job_id}, status_code=202, headers={"Location": f"/status/{job_id}"}
        )

    async def status(self, request: Request) -> Response:
        self.polls += 1
        job = self.jobs[request.path_params["id"]]
        if request.path_params["id"] in self.cancelled:
            return JSONResponse({"status": "cancelled"})
        job["step"] += 1
        if job["step"] < job["steps"]:
            return JSONResponse({"status": "running", "progress": 100 * job["step"] / job["steps"]})
        if job["fail"]:
            return JSONResponse({"status": "failed", "error": "remote model crashed"})
        return JSONResponse({"status": "completed", "result": {"answer": 42}})

    async def cancel(self, request: Request) -> Response:
        self.cancelled.append(request.path_params["id"])
        return JSONResponse({})

    async def ws(self, websocket: WebSocket) -> None:
        await websocket.accept()
        request = json.loads(await websocket.receive_text())
        mode = request.get("mode")
        await websocket.send_bytes(b"\x00\x01 binary preview")
        await websocket.send_text("not json")
        await websocket.send_text(json.dumps({"type": "status", "queue": 0}))
        for p in (25, 50, 75):
            await websocket.send_text(json.dumps({"type": "progress", "progress": p}))
        if mode == "error":
            await websocket.send_text(
                json.dumps({"type": "error", "error": "no GPU", "retryable": True})
            )
        elif mode == "close":
            await websocket.close()
            return
        elif mode == "hang":
            try:
                msg = json.loads(await websocket.receive_text())
                if msg.get("type") == "cancel":
                    self.ws_cancelled.set()
            except WebSocketDisconnect:
                pass
            return
        else:
            await websocket.send_text(json.dumps({"type": "result", "result": {"text": "hi"}}))
        with contextlib.suppress(WebSocketDisconnect):
            await websocket.receive_text()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/echo", self.echo, methods=["POST"]),
                Route("/submit", self.submit, methods=["POST"]),
                Route("/status/{id}", self.status),
                Route("/cancel/{id}", self.cancel, methods=["POST"]),
                WebSocketRoute("/ws", self.ws),
            ]
        )


@pytest.fixture(scope="module")
async def _service() -> AsyncIterator[tuple[Service, RunningServer]]:
    svc = Service()
    async with serve(svc.app()) as server:
        yield svc, server


@pytest.fixture
def service(_service: tuple[Service, RunningServer]) -> tuple[Service, RunningServer]:
    """The module's service with no remote jobs yet."""
    _service[0].reset()
    return _service


async def test_rest_sync_returns_the_reply(service: tuple[Service, RunningServer]) -> None:
    c = RestSyncConnector()
    job, _ = make_job(
        {"url": f"{service[1].url}/echo", "body": {"x": 1}, "headers": {"X-Key": "k"}},
        service="rest_sync",
    )
    result = await c.process(job, Progress())
    assert result == {
        "status_code": 200,
        "response": {"echo": {"x": 1}, "auth": "k"},
        "output_files": [],
    }
    await c.close()


@pytest.mark.parametrize(
    ("body", "error_type", "retryable"),
    [({"boom": True}, "service_error", True), ({"bad": True}, "service_rejected", False)],
)
async def test_rest_sync_classifies_http_errors(
    service: tuple[Service, RunningServer], body: dict[str, Any], error_type: str, retryable: bool
) -> None:
    c = RestSyncConnector()
    job, _ = make_job({"url": f"{service[1].url}/echo", "body": body}, service="rest_sync")
    with pytest.raises(ConnectorError) as info:
        await c.process(job, Progress())
    assert info.value.error_type == error_type
    assert info.value.retryable is retryable
    await c.close()


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"url": "/relative"},
        {"url": "http://x", "method": "BREW"},
        {"url": "http://x", "oops": 1},
    ],
)
async def test_rest_payload_errors_fail_at_once(payload: dict[str, Any]) -> None:
    c = RestSyncConnector()
    job, _ = make_job(payload, service="rest_sync")
    with pytest.raises(ConnectorError) as info:
        await c.process(job, Progress())
    assert info.value.error_type == "invalid_payload"
    assert not info.value.retryable
    await c.close()


async def test_rest_base_url_confines_job_urls(
    service: tuple[Service, RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMPQ_REST_BASE_URL", service[1].url)
    c = RestSyncConnector()
    ok, _ = make_job({"url": "/echo", "body": {}}, service="rest_sync")
    assert (await c.process(ok, Progress()))["status_code"] == 200
    bad, _ = make_job({"url": "http://169.254.169.254/latest", "body": {}}, service="rest_sync")
    with pytest.raises(ConnectorError) as info:
        await c.process(bad, Progress())
    assert info.value.error_type == "invalid_payload"
    await c.close()


async def test_rest_service_down_is_retryable() -> None:
    c = RestSyncConnector()
    job, _ = make_job({"url": f"http://127.0.0.1:{free_port()}/echo"}, service="rest_sync")
    with pytest.raises(ConnectorError) as info:
        await c.process(job, Progress())
    assert info.value.error_type == "service_unavailable"
    assert info.value.retryable
    await c.close()


async def test_rest_async_polls_to_completion_with_progress(
    service: tuple[Service, RunningServer],
) -> None:
    c = RestAsyncConnector()
    progress = Progress()
    job, _ = make_job(
        {
            "url": f"{service[1].url}/submit",
            "body": {"steps": 4},
            "poll_interval": 0.01,
            "result_field": "result",
        },
        service="rest_async",
    )
    result = await c.process(job, progress)
    assert result == {"id": "r1", "response": {"answer": 42}, "output_files": []}
    assert progress.values == [25.0, 50.0, 75.0]
    await c.close()


async def test_rest_async_remote_failure_is_not_retried(
    service: tuple[Service, RunningServer],
) -> None:
    c = RestAsyncConnector()
    job, _ = make_job(
        {
            "url": f"{service[1].url}/submit",
            "body": {"fail": True},
            "poll_interval": 0.01,
            "status_url": f"{service[1].url}/status/{{id}}",
        },
        service="rest_async",
    )
    with pytest.raises(ConnectorError) as info:
        await c.process(job, Progress())
    assert info.value.error_type == "remote_failed"
    assert "remote model crashed" in info.value.message
    await c.close()


async def test_rest_async_cancel_posts_the_cancel_url(
    service: tuple[Service, RunningServer],
) -> None:
    c = RestAsyncConnector()
    progress = Progress()
    job, _ = make_job(
        {
            "url": f"{service[1].url}/submit",
            "body": {"steps": 10**6},
            "poll_interval": 0.01,
            "cancel_url": f"{service[1].url}/cancel/{{id}}",
        },
        service="rest_async",
    )
    task = asyncio.create_task(c.process(job, progress))
    await asyncio.wait_for(progress.started.wait(), 5)
    await c.cancel(job)
    with pytest.raises(ConnectorError) as info:
        await asyncio.wait_for(task, 5)
    assert service[0].cancelled == ["r1"]
    assert info.value.error_type == "remote_failed"
    await c.close()


async def test_websocket_reads_every_frame_until_the_result(
    service: tuple[Service, RunningServer],
) -> None:
    c = WebSocketConnector()
    progress = Progress()
    job, _ = make_job(
        {"url": f"{service[1].ws_url}/ws", "message": {"mode": "ok"}}, service="websocket"
    )
    result = await c.process(job, progress)
    assert result == {"text": "hi", "output_files": []}
    assert progress.values == [25.0, 50.0, 75.0]


async def test_websocket_error_frame_fails_with_its_retry_hint(
    service: tuple[Service, RunningServer],
) -> None:
    c = WebSocketConnector()
    job, _ = make_job(
        {"url": f"{service[1].ws_url}/ws", "message": {"mode": "error"}}, service="websocket"
    )
    with pytest.raises(ConnectorError) as info:
        await c.process(job, Progress())
    assert info.value.error_type == "service_error"
    assert info.value.retryable
    assert "no GPU" in info.value.message


async def test_websocket_closed_before_result_is_retryable(
    service: tuple[Service, RunningServer],
) -> None:
    c = WebSocketConnector()
    job, _ = make_job(
        {"url": f"{service[1].ws_url}/ws", "message": {"mode": "close"}}, service="websocket"
    )
    with pytest.raises(ConnectorError) as info:
        await c.process(job, Progress())
    assert info.value.error_type == "service_unavailable"
    assert info.value.retryable


async def test_websocket_cancel_tells_the_service(service: tuple[Service, RunningServer]) -> None:
    c = WebSocketConnector()
    progress = Progress()
    job, _ = make_job(
        {"url": f"{service[1].ws_url}/ws", "message": {"mode": "hang"}}, service="websocket"
    )
    task = asyncio.create_task(c.process(job, progress))
    await asyncio.wait_for(progress.started.wait(), 5)
    await c.cancel(job)
    await asyncio.wait_for(service[0].ws_cancelled.wait(), 5)
    with pytest.raises(ConnectorError):
        await asyncio.wait_for(task, 5)


async def test_websocket_service_down_is_retryable() -> None:
    c = WebSocketConnector()
    job, _ = make_job({"url": f"ws://127.0.0.1:{free_port()}/ws"}, service="websocket")
    with pytest.raises(ConnectorError) as info:
        await c.process(job, Progress())
    assert info.value.error_type == "service_unavailable"
