"""Health-gated claiming: a service outage costs no attempt; the worker resumes by itself."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from empq.config import WorkerSettings
from empq.connectors.a1111 import A1111Connector
from empq.connectors.base import Connector, ConnectorHealth
from empq.connectors.comfyui import ComfyUIConnector
from empq.worker.health import HealthMonitor, backoff
from empq.worker.runtime import Worker
from tests.cli.support import run_empq
from tests.fakes.a1111_server import running_a1111
from tests.fakes.comfyui_server import running_comfyui
from tests.support.hub_fixtures import HubHandle
from tests.worker.conftest import WAIT, running_worker, submit, wait_for_job

WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}},
    "2": {"class_type": "Sampler", "inputs": {"image": ["1", 0], "steps": 2}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "g"}},
}


def test_health_checks_back_off_from_half_a_second_to_ten() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4, 5, 6, 10)] == [0.5, 1, 2, 4, 8, 10, 10]


class Flaky(Connector):
    name = "flaky"
    services = ("flaky",)

    def __init__(self) -> None:
        super().__init__()
        self.up = False

    async def process(self, job: Any, progress: Any) -> dict[str, Any]:
        return {}

    async def health(self) -> ConnectorHealth:
        return ConnectorHealth(healthy=self.up, detail=None if self.up else "connection refused")


async def test_a_service_down_from_the_start_is_reported_with_since_and_summary() -> None:
    flaky = Flaky()
    seen: list[bool] = []

    async def changed(state: Any) -> None:
        seen.append(state.reachable)

    monitor = HealthMonitor([flaky], interval=30, on_change=changed)
    await monitor.check_all()
    assert not monitor.any_healthy()
    assert monitor.down_services() == {"flaky"}
    entry = monitor.status()["flaky"]
    assert entry["state"] == "unreachable"
    assert entry["summary"].startswith("flaky: unreachable since 20")
    assert entry["summary"].endswith(": connection refused")
    assert seen == [False]
    flaky.up = True
    await monitor.check(monitor.states["flaky"])
    assert monitor.any_healthy()
    assert monitor.status()["flaky"]["state"] == "healthy"


async def _job(client: httpx.AsyncClient, service: str) -> str:
    if service == "comfyui":
        payload: dict[str, Any] = {"workflow": WORKFLOW}
    else:
        payload = {"prompt": "a cat", "steps": 3}
    # No retries at all: a failed attempt would end the job `failed`.
    return await submit(
        client, payload=payload, requirements={"service_type": service}, max_retries=0
    )


async def _all_done(client: httpx.AsyncClient, ids: list[str]) -> list[dict[str, Any]]:
    return [await wait_for_job(client, i, within=WAIT * 2) for i in ids]


async def _worker_says(client: httpx.AsyncClient, worker: Worker, name: str, state: str) -> None:
    """Until the worker has found `name` in `state` and the hub has recorded it."""
    async with asyncio.timeout(WAIT):
        await worker.health.wait_reachable(name, state == "healthy")
        # The change went out in a heartbeat; its ack means the hub recorded it.
        await worker.link.wait_heartbeat_acks(worker.link.heartbeats_sent)
    info = (await client.get(f"/api/workers/{worker.worker_id}")).json()
    assert info["connector_status"][name]["state"] == state, info


@pytest.mark.slow
async def test_comfyui_and_a1111_stopped_and_restarted_mid_run_cost_no_attempt(
    hub: HubHandle,
) -> None:
    async with running_comfyui() as (comfy_fake, comfy), running_a1111() as (a1111_fake, a1111):
        settings = WorkerSettings(comfyui_url=comfy.url, a1111_url=a1111.url)
        connectors = [ComfyUIConnector(settings), A1111Connector(settings, poll_interval=0.05)]
        # Heartbeats (and healthy checks) rarely: the outage is found by a job first.
        async with (
            running_worker(
                hub.ws_url,
                connectors=connectors,
                services=["comfyui", "a1111"],
                heartbeat_interval=20,
            ) as worker,
            hub.client() as client,
        ):
            ids = [await _job(client, s) for s in ["comfyui", "a1111"] * 3]
            await _all_done(client, ids)

            # ComfyUI goes away; jobs of both kinds keep coming.
            await comfy.stop()
            during = [await _job(client, s) for s in ["comfyui", "a1111"] * 4]
            comfy_during = during[0::2]
            for job_id in during[1::2]:  # A1111 is fine: its jobs run meanwhile
                assert (await wait_for_job(client, job_id))["status"] == "completed"
            await _worker_says(client, worker, "comfyui", "unreachable")
            waiting = (await client.get(f"/api/jobs/{comfy_during[0]}")).json()
            assert waiting["status"] == "queued"
            assert waiting["attempts"] == 0
            explained = (await client.get(f"/api/jobs/{comfy_during[0]}/explain")).json()
            reasons = [r for w in explained["rejected_workers"] for r in w["reasons"]]
            assert any(r.startswith("comfyui: unreachable since") for r in reasons), explained

            await comfy.start()  # back on the same port: the worker resumes by itself
            ids += during

            # Then A1111 goes away and comes back.
            await a1111.stop()
            later = [await _job(client, "a1111") for _ in range(3)]
            await _worker_says(client, worker, "a1111", "unreachable")
            await a1111.start()
            ids += later

            done = await _all_done(client, ids)
        assert [d["status"] for d in done] == ["completed"] * len(ids)
        assert [d["attempts"] for d in done] == [0] * len(ids)
        # Each job ran on its service exactly once.
        assert comfy_fake.counter == 3 + 4
        assert len(a1111_fake.requests) == 3 + 4 + 3


async def test_with_its_only_service_down_the_worker_claims_nothing_and_resumes(
    hub: HubHandle,
) -> None:
    async with running_comfyui() as (comfy_fake, comfy):
        connector = ComfyUIConnector(WorkerSettings(comfyui_url=comfy.url))
        await comfy.stop()
        async with (
            running_worker(hub.ws_url, connectors=[connector], services=["comfyui"]) as worker,
            hub.client() as client,
        ):
            assert isinstance(worker, Worker)
            assert worker.slots == 0
            job_id = await _job(client, "comfyui")
            await _worker_says(client, worker, "comfyui", "unreachable")
            record = (await client.get(f"/api/jobs/{job_id}")).json()
            assert record["status"] == "queued"
            assert record["attempts"] == 0
            shown = await asyncio.to_thread(run_empq, "workers", "--hub", hub.http_url)
            assert shown.code == 0, shown.err
            assert "comfyui: unreachable since" in shown.out
            await comfy.start()
            done = await wait_for_job(client, job_id, within=WAIT * 2)
            assert done["status"] == "completed"
            assert done["attempts"] == 0
            assert comfy_fake.counter == 1
