"""Bad input never half-applies (docs/security.md): every REST 422 case is refused the
same way over the WebSocket, non-finite numbers and deep nesting are refused at the
edge, and nothing a client sees quotes Redis. Issue 25 hole 6."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import annotated_types as at
import pytest
from pydantic import BaseModel

from empq.models import JobSubmission
from empq.protocol import SubmitJob
from empq.redis_server import RedisServer
from tests.support.hub_fixtures import HubHandle, RawPeer, raw_worker, start_hub

BIG = "x" * 10_000

#: (field as REST names it, bad body fields): each is a 422 over REST.
REST_422 = [
    ("customer_id", {"customer_id": ""}),
    ("customer_id", {"customer_id": BIG}),
    ("idempotency_key", {"idempotency_key": ""}),
    ("idempotency_key", {"idempotency_key": BIG}),
    ("workflow_id", {"workflow_id": ""}),
    ("workflow_id", {"workflow_id": BIG}),
    ("webhook_url", {"webhook_url": ""}),
    ("webhook_url", {"webhook_url": "not a url"}),
    ("webhook_url", {"webhook_url": "ftp://example.com/x"}),
    ("step_number", {"step_number": -1}),
    ("step_number", {"step_number": 2**63}),
    ("workflow_datetime", {"workflow_datetime": -1}),
    ("workflow_datetime", {"workflow_datetime": 2**63}),
    ("priority", {"priority": 101}),
    ("priority", {"priority": "high"}),
    ("workflow_priority", {"workflow_priority": -1}),
    ("max_retries", {"max_retries": -1}),
    ("payload", {"payload": "text"}),
    ("requirements.hardware.gpu_memory_gb", {"requirements": {"hardware": {"gpu_memory_gb": -1}}}),
    ("requirements.customer_isolation", {"requirements": {"customer_isolation": "total"}}),
    ("requirements.timeout_minutes", {"requirements": {"timeout_minutes": 0}}),
    ("requirements.bogus", {"requirements": {"bogus": 1}}),
    ("bogus", {"bogus": 1}),
    ("type", {"type": ""}),
]


def _violations(model: type[BaseModel], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """A refused value for every constraint of every field of `model` (nested models too),
    plus a wrong type for each: the REST 422 cases, derived from the model itself."""
    cases: list[tuple[str, dict[str, Any]]] = []
    for name, info in model.model_fields.items():
        field = prefix + name
        nested = [
            a
            for a in get_args(info.annotation) or (info.annotation,)
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if nested:
            for sub, body in _violations(nested[0], field + "."):
                cases.append((sub, {name: body}))
            cases.append((field, {name: "not an object"}))
            continue
        meta = list(info.metadata)
        for arg in get_args(info.annotation):
            if get_origin(arg) is Annotated:
                for extra in get_args(arg)[1:]:
                    meta.extend(getattr(extra, "metadata", [extra]))
        for m in meta:
            if isinstance(m, at.MinLen) and m.min_length > 0:
                cases.append((field, {name: "x" * (m.min_length - 1)}))
            elif isinstance(m, at.MaxLen):
                cases.append((field, {name: "x" * (m.max_length + 1)}))
            elif isinstance(m, at.Ge):
                cases.append((field, {name: m.ge - 1}))
            elif isinstance(m, at.Gt):
                cases.append((field, {name: m.gt}))
            elif isinstance(m, at.Le):
                cases.append((field, {name: m.le + 1}))
            elif isinstance(m, at.Lt):
                cases.append((field, {name: m.lt}))
        if name != "payload":
            cases.append((field, {name: {"wrong": "type"}}))
    return cases


REST_422 += _violations(JobSubmission)


def _ws_body(fields: dict[str, Any]) -> dict[str, Any]:
    body = {"type": "submit_job", "job_type": "t", **fields}
    if "type" in fields:
        body["type"], body["job_type"] = "submit_job", fields["type"]
    return body


async def test_every_rest_422_is_refused_alike_over_the_socket(hub: HubHandle) -> None:
    """Each case: 422 over REST naming the field; over one socket, `VALIDATION_ERROR`
    naming the same field; nothing stored either way; the socket still answers."""
    wrong = []
    async with hub.client() as http, RawPeer.connect(hub.ws_url) as peer:
        for field, fields in REST_422:
            r = await http.post("/api/jobs", json={"type": "t", **fields})
            rest_fields = [d["field"] for d in r.json()["error"]["details"]]
            err = await peer.request(_ws_body(fields), "error")
            ws_field = "job_type" if field == "type" else field
            ws_fields = [d["field"] for d in err.get("details") or []]
            if not (
                r.status_code == 422
                and field in rest_fields
                and err["error_code"] == "VALIDATION_ERROR"
                and ws_field in ws_fields
            ):
                wrong.append((field, r.status_code, rest_fields, err))
        assert not wrong, wrong
        assert len(REST_422) > 70
        assert (await http.get("/api/jobs")).json()["jobs"] == []
        await peer.request({"type": "ping", "worker_id": "after"}, "pong")


def test_submit_job_has_the_rest_fields_and_constraints() -> None:
    rest = JobSubmission.model_fields
    ws = SubmitJob.model_fields
    assert set(rest) - {"type"} == set(ws) - {"type", "job_type", "timestamp", "id", "source"}
    for name, info in rest.items():
        if name == "type":
            continue
        assert ws[name].annotation == info.annotation, name
        assert repr(ws[name].metadata) == repr(info.metadata), name
    assert repr(ws["job_type"].metadata) == repr(rest["type"].metadata)


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity", "-Infinity"])
async def test_non_finite_numbers_are_refused_at_the_edge(hub: HubHandle, number: str) -> None:
    async with hub.client() as http, RawPeer.connect(hub.ws_url) as peer:
        frame = f'{{"type": "submit_job", "job_type": "t", "payload": {{"x": [1, {number}]}}}}'
        err = await peer.request(frame, "error")
        assert err["error_code"] == "VALIDATION_ERROR"
        assert err["details"][0]["field"] == "payload.x.1"
        assert (await http.get("/api/jobs")).json()["jobs"] == []


async def test_complete_with_infinite_processing_time_changes_nothing(hub: HubHandle) -> None:
    """The issue's case: `processing_time: 1e999` left the job completed without its
    event. Now it is refused before the hub acts; the job stays the worker's."""
    async with (
        hub.client() as http,
        RawPeer.connect(hub.ws_url) as monitor,
        raw_worker(hub.ws_url, "w") as worker,
    ):
        await monitor.request(
            {"type": "subscribe_job_notifications"}, "job_notifications_subscribed"
        )
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        token = (await worker.request({"type": "claim_job"}, "job_assigned"))["claim_token"]
        frame = (
            f'{{"type": "complete_job", "job_id": "{job_id}", "claim_token": "{token}",'
            ' "result": {}, "processing_time": 1e999}'
        )
        err = await worker.request(frame, "error")
        assert err["error_code"] == "VALIDATION_ERROR"
        assert err["details"][0]["field"] == "processing_time"
        assert "redis" not in err["error"].lower()
        assert "script" not in err["error"].lower()
        assert (await http.get(f"/api/jobs/{job_id}")).json()["status"] == "assigned"
        await worker.request(
            {"type": "complete_job", "job_id": job_id, "claim_token": token, "result": {}},
            "job_completed_ack",
        )
        done = await monitor.expect("job_completed", where=lambda m: m.get("job_id") == job_id)
        assert done["status"] == "completed"


async def test_complete_script_ignores_a_non_finite_time_rather_than_half_applying(
    hub: HubHandle,
) -> None:
    """Below the edge: complete.lua checks its arguments before any write, so a batch
    holding a non-finite processing time, or finite ones whose sum is not (the batch's
    stats are summed before they are written), completes every job in it, each with its
    event."""
    broker = hub.hub.broker
    async with (
        hub.client() as http,
        RawPeer.connect(hub.ws_url) as monitor,
        raw_worker(
            hub.ws_url, "w", {"services": [], "performance": {"concurrent_jobs": 5}}
        ) as worker,
    ):
        await monitor.request(
            {"type": "subscribe_job_notifications"}, "job_notifications_subscribed"
        )
        ids = [
            (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"] for _ in range(5)
        ]
        await worker.send({"type": "claim_job", "max_jobs": 5})
        tokens = {}
        for _ in range(5):
            a = await worker.expect("job_assigned")
            tokens[a["job_id"]] = a["claim_token"]
        import asyncio

        times = [math.inf, math.nan, 1.5, 1e308, 1e308]
        await asyncio.gather(
            *(broker.complete(j, tokens[j], {}, t) for j, t in zip(ids, times, strict=True))
        )
        for job_id in ids:
            assert (await http.get(f"/api/jobs/{job_id}")).json()["status"] == "completed"
            event = await monitor.expect(
                "job_completed", where=lambda m, j=job_id: m["job_id"] == j
            )
            assert math.isfinite(event["processing_time"])
        stats = (await http.get("/api/stats")).json()
        assert json.dumps(stats)  # every figure still a finite number


@pytest.mark.parametrize("depth", [960, 100_000])
async def test_deep_nesting_gets_an_error_and_the_socket_stays(hub: HubHandle, depth: int) -> None:
    async with RawPeer.connect(hub.ws_url) as peer:
        frame = '{"type": "submit_job", "job_type": "t", "payload": {"x": %s}}' % (
            "[" * depth + "]" * depth
        )
        err = await peer.request(frame, "error")
        assert err["error_code"] == "NESTED_TOO_DEEP"
        await peer.request({"type": "ping", "worker_id": "still-here"}, "pong")


async def test_a_redis_error_is_never_quoted_to_a_client(tmp_path: Path) -> None:
    with RedisServer(persistent=False) as redis:
        async with (
            start_hub(redis.url, tmp_path) as hub,
            hub.client() as http,
            RawPeer.connect(hub.ws_url) as peer,
        ):
            redis.stop()
            err = await peer.request(
                {"type": "request_job_status", "job_id": "j"}, "error", within=15
            )
            r = await http.get("/api/jobs/j")
        assert err["error_code"] == "UNAVAILABLE"
        assert r.status_code == 503
        for text in (err["error"], r.json()["error"]["message"]):
            low = text.lower()
            assert "error" not in low
            assert "connect" not in low
            assert str(redis.port) not in low
            assert text.startswith("queue storage unavailable")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e999"])
async def test_non_finite_numbers_in_a_rest_payload_are_refused(
    hub: HubHandle, number: str
) -> None:
    """REST too: the free-form payload may not carry a number JSON has no text for."""
    async with hub.client() as http:
        bad = f'{{"type": "t", "payload": {{"x": {number}}}}}'
        headers = {"content-type": "application/json"}
        r = await http.post("/api/jobs", content=bad, headers=headers)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["field"] == "payload.x"
        batch = f'{{"jobs": [{{"type": "ok"}}, {bad}]}}'
        r = await http.post("/api/jobs/batch", content=batch, headers=headers)
        assert r.status_code == 422, r.text
        assert (await http.get("/api/jobs")).json()["jobs"] == []
        ok = await http.post("/api/jobs", json={"type": "t", "payload": {"x": "NaN"}})
        assert ok.status_code == 201
        assert ok.json()["position"] == 1
