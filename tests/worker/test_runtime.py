"""A worker against a real hub: pull, run, report, and the claim rules that protect jobs."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from empq.hub.sockets import ws as hub_ws
from empq.worker import session
from empq.worker.connection import RECONNECT_MAX, RECONNECT_MIN, reconnect_delay
from tests.support.hub_fixtures import HubHandle
from tests.worker.conftest import WAIT, GateConnector, running_worker, submit, wait_for_job


async def test_worker_completes_a_simulation_job(hub: HubHandle) -> None:
    async with running_worker(hub.ws_url) as worker, hub.client() as client:
        job_id = await submit(client, payload={"steps": 3})
        done = await wait_for_job(client, job_id)
        assert done["status"] == "completed"
        assert done["result"] == {"simulated": True, "steps": 3, "output_files": []}
        assert done["worker_id"] == worker.worker_id


async def test_connector_failure_is_reported_with_its_type_and_retried(hub: HubHandle) -> None:
    async with running_worker(hub.ws_url), hub.client() as client:
        job_id = await submit(client, payload={"fail": True}, max_retries=0)
        done = await wait_for_job(client, job_id, "failed")
        assert done["error_details"]["error_type"] == "simulated_failure"
        assert done["error_details"]["retryable"] is True
        assert done["result"] is None


async def test_unusable_payload_fails_at_once_without_retry(hub: HubHandle) -> None:
    async with running_worker(hub.ws_url), hub.client() as client:
        job_id = await submit(client, payload={"steps": "many"}, max_retries=3)
        done = await wait_for_job(client, job_id, "failed")
        assert done["error_details"]["error_type"] == "invalid_payload"
        assert done["attempts"] == 1, "a payload error must not be retried"


async def test_runs_up_to_concurrent_jobs_at_once_and_reports_progress(hub: HubHandle) -> None:
    gate = GateConnector()
    async with (
        running_worker(hub.ws_url, connectors=[gate], concurrent_jobs=3) as worker,
        hub.client() as client,
    ):
        ids = [await submit(client) for _ in range(5)]
        await gate.wait_active(3)
        assert len(worker.jobs) == 3
        running = await wait_for_job(client, gate.started[0], "in_progress")
        assert running["progress"] == 50
        assert running["message"] == "half way"
        gate.gate.set()
        for job_id in ids:
            assert (await wait_for_job(client, job_id))["status"] == "completed"
        assert gate.peak == 3


async def test_outputs_go_to_the_hub_artifact_store(hub: HubHandle) -> None:
    gate = GateConnector()
    gate.gate.set()
    async with running_worker(hub.ws_url, connectors=[gate]), hub.client() as client:
        job_id = await submit(client)
        done = await wait_for_job(client, job_id)
        assert done["status"] == "completed"
        (url,) = done["result"]["output_files"]
        fetched = await client.get(url)
        assert fetched.status_code == 200
        assert fetched.text == f"result of {job_id}"


async def test_cancel_stops_the_connector_and_frees_the_slot(hub: HubHandle) -> None:
    gate = GateConnector()
    async with running_worker(hub.ws_url, connectors=[gate]) as worker, hub.client() as client:
        first = await submit(client)
        await gate.wait_active(1)
        reply = await client.post(f"/api/jobs/{first}/cancel")
        assert reply.status_code == 200
        async with asyncio.timeout(WAIT), gate.changed:
            await gate.changed.wait_for(lambda: gate.active == 0)
        assert gate.cancelled == [first]
        gate.gate.set()
        second = await submit(client)
        assert (await wait_for_job(client, second))["status"] == "completed"
        assert (await wait_for_job(client, first))["status"] == "cancelled"
        assert worker.metrics.jobs.labels("cancelled")._value.get() == 1


async def test_two_cancel_orders_in_one_turn_cancel_at_the_service_once(hub: HubHandle) -> None:
    # The hub's `cancel_job` and its refusal of a report about the cancelled job can
    # arrive together; a second cancel at the service (ComfyUI's `/interrupt`) could
    # stop the service's next job.
    gate = GateConnector()
    async with running_worker(hub.ws_url, connectors=[gate]) as worker, hub.client() as client:
        first = await submit(client)
        await gate.wait_active(1)
        worker.order_cancel(first)
        worker.order_cancel(first)
        async with asyncio.timeout(WAIT), gate.changed:
            await gate.changed.wait_for(lambda: gate.active == 0)
        assert gate.cancelled == [first]


async def test_heartbeats_carry_system_info_and_connector_health(
    hub: HubHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hub's own heartbeat handler, followed by a signal that it has run.
    handled = asyncio.Event()
    original = hub_ws.HANDLERS["worker_heartbeat"]

    async def heartbeat(hub_: Any, conn: Any, msg: Any) -> None:
        await original(hub_, conn, msg)
        handled.set()

    monkeypatch.setitem(hub_ws.HANDLERS, "worker_heartbeat", heartbeat)
    async with (
        running_worker(hub.ws_url, heartbeat_interval=0.05) as worker,
        hub.client() as client,
    ):
        async with asyncio.timeout(WAIT):
            await handled.wait()
        info = (await client.get(f"/api/workers/{worker.worker_id}")).json()
        assert info["connector_status"]["simulation"]["healthy"] is True
        assert "cpu_percent" in info["system_info"]
        assert info["capabilities"]["services"] == ["simulation"]


async def test_job_available_wakes_an_idle_worker_without_waiting_for_the_poll(
    hub: HubHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fallback poll would come far too late: only `job_available` can wake the worker.
    monkeypatch.setattr(session, "POLL_MIN", 60.0)
    monkeypatch.setattr(session, "POLL_MAX", 60.0)
    async with running_worker(hub.ws_url) as worker, hub.client() as client:
        async with asyncio.timeout(WAIT):
            await worker.idle.wait()
        job_id = await submit(client)
        done = await wait_for_job(client, job_id, within=3)
        assert done["status"] == "completed"


def test_reconnect_back_off_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for failures in range(12):
        ceiling = min(RECONNECT_MAX, RECONNECT_MIN * 2**failures)
        delays = [reconnect_delay(failures, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2, "jitter spans the window"
    assert reconnect_delay(10_000, rng) <= RECONNECT_MAX


async def test_free_slots_are_claimed_with_one_claim_job(hub: HubHandle) -> None:
    gate = GateConnector()
    claims = hub.hub.metrics.messages.labels("claim_job")
    async with (
        running_worker(hub.ws_url, connectors=[gate], concurrent_jobs=4),
        hub.client() as client,
    ):
        jobs = [{"type": "sim", "requirements": {"service_type": "simulation"}}] * 4
        before = claims._value.get()
        r = await client.post("/api/jobs/batch", json={"jobs": jobs})
        assert r.status_code == 201
        await gate.wait_active(4)
        # One offer brings one claim for all four free slots (a fallback poll may add one);
        # a claim per slot would have taken four.
        assert claims._value.get() - before <= 2
        gate.gate.set()
        for j in r.json()["jobs"]:
            assert (await wait_for_job(client, j["job_id"]))["status"] == "completed"
