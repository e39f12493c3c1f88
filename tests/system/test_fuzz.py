"""Fuzzing the WebSocket protocol against a real hub process (issue 25, deliver 5).

Strategies come from the protocol's own models (`strategies.for_model`: every field
from its annotation and constraints) and give well-shaped messages; a mutation replaces one of their
fields with any JSON value (wrong types, huge numbers, deep values), and raw frames add
text that is not a message at all. Every frame must get its answer on the same open
socket: no `INTERNAL_ERROR`, no traceback in the hub's log, and afterwards `/health`
answers and a real job runs to completion.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from websockets.sync.client import ClientConnection, connect

from empq import protocol
from tests.security.strategies import JSON, for_model, mutated
from tests.support.hub_fixtures import HubProcess

pytestmark = pytest.mark.slow

#: Frames sent per run (about 5 ms each against a local hub).
FUZZ_EXAMPLES = 1000

MODELS: list[type[BaseModel]] = [
    protocol.RegisterWorker,
    protocol.ClaimJob,
    protocol.JobAcceptedByWorker,
    protocol.UpdateJobProgress,
    protocol.CompleteJob,
    protocol.FailJob,
    protocol.WorkerHeartbeat,
    protocol.WorkerStatusMessage,
    protocol.UpdateCapabilities,
    protocol.Disconnect,
    protocol.RegisterClient,
    protocol.SubmitJob,
    protocol.RequestJobStatus,
    protocol.CancelJob,
    protocol.SubscribeJob,
    protocol.SubscribeJobNotifications,
    protocol.RequestStats,
    protocol.SubscribeWorkerUpdates,
    protocol.Ping,
]

MESSAGES = st.one_of(
    *[for_model(m) for m in MODELS],
    *[mutated(m) for m in MODELS],
)
RAW = st.one_of(
    st.text(max_size=200),
    JSON.map(json.dumps),
    st.sampled_from(
        [
            '{"type": 5}',
            "[]",
            '{"type": "submit_job", "job_type": "t", "priority": 1e999}',
            '{"type": "submit_job", "job_type": "t", "payload": ' + "[" * 500 + "]" * 500 + "}",
            '{"type": "complete_job", "job_id": "j", "claim_token": "t", "processing_time": NaN}',
        ]
    ),
)


def _answered(ws: ClientConnection, frame: str) -> list[dict[str, Any]]:
    """Send a frame, then a ping; every message up to the ping's pong."""
    nonce = uuid.uuid4().hex
    ws.send(frame)
    ws.send(json.dumps({"type": "ping", "worker_id": nonce}))
    got = []
    while True:
        msg = json.loads(ws.recv(timeout=10))
        got.append(msg)
        if msg.get("type") == "pong" and msg.get("worker_id") == nonce:
            return got


def _fuzz(ws_url: str) -> int:
    sent = 0
    with connect(ws_url, max_size=None) as ws:
        ws.recv(timeout=10)  # connection_established

        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
                HealthCheck.data_too_large,
            ],
        )
        @given(st.one_of(MESSAGES.map(json.dumps), RAW))
        def one(frame: str) -> None:
            nonlocal sent
            sent += 1
            for msg in _answered(ws, frame):
                assert msg.get("error_code") != "INTERNAL_ERROR", (frame[:300], msg)

        one()
    return sent


async def test_fuzzed_messages_never_break_the_hub(
    hub_process: Callable[..., AbstractAsyncContextManager[HubProcess]],
) -> None:
    async with hub_process(EMPQ_LOG_LEVEL="info") as hub:
        sent = await asyncio.to_thread(_fuzz, hub.ws_url)
        assert sent >= FUZZ_EXAMPLES
        async with httpx.AsyncClient(base_url=hub.http_url, timeout=10) as http:
            assert (await http.get("/health")).status_code == 200
            await asyncio.to_thread(_real_job_runs, hub.ws_url, hub.http_url)
    log = hub.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert "INTERNAL_ERROR" not in log


def _real_job_runs(ws_url: str, http_url: str) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    with connect(ws_url) as ws, httpx.Client(base_url=http_url, timeout=10) as http:
        ws.recv(timeout=10)
        ws.send(
            json.dumps(
                {
                    "type": "register_worker",
                    "worker_id": f"real-{service}",
                    "capabilities": {"services": [service]},
                }
            )
        )
        _until(ws, "worker_registered")
        job = http.post("/api/jobs", json={"type": "t", "requirements": {"service_type": service}})
        job_id = job.json()["job_id"]
        # Fuzzed jobs are queued too (some ahead of this one): run jobs until it is done.
        for _ in range(5000):
            ws.send(json.dumps({"type": "claim_job"}))
            assigned = _until(ws, "job_assigned")
            complete = {
                "type": "complete_job",
                "job_id": assigned["job_id"],
                "claim_token": assigned["claim_token"],
                "result": {"ok": 1},
            }
            ws.send(json.dumps(complete))
            _until(ws, "job_completed_ack")
            if assigned["job_id"] == job_id:
                break
        assert http.get(f"/api/jobs/{job_id}").json()["status"] == "completed"


def _until(ws: ClientConnection, mtype: str) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if msg.get("type") == mtype:
            return msg
        assert msg.get("type") != "error", msg
