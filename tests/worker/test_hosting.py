"""Class connectors whose `async def` blocks: their own loop keeps the worker alive.

The hub drops a worker that is silent for its heartbeat timeout and gives its job to
another worker. A connector calling blocking code inside `async def process` used to
silence the whole worker; each such connector now runs on an event loop of its own
(`empq.worker.hosting`), so heartbeats, claims and cancel orders go on.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from empq.config import WorkerSettings
from empq.connectors.base import Connector, ConnectorHealth, JobContext, ProgressReporter
from empq.connectors.simulation import SimulationConnector
from empq.worker.hosting import HostedConnector, host_connectors
from tests.support.hub_fixtures import HubHandle
from tests.worker.conftest import WAIT, running_worker, submit, wait_for_job


class BlockingGpu(Connector):
    """Blocks its loop like an in-process torch call, reporting progress between blocks
    (each report is where a `cancel` and the cancellation reach it)."""

    name = "gpu"
    services = ("gpu",)

    def __init__(self, settings: WorkerSettings | None = None) -> None:
        super().__init__(settings)
        self.threads: set[str] = set()
        self.cancelled: list[str] = []
        self.cancel_seen = threading.Event()
        self.entered = threading.Event()

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        seconds = float(job.payload.get("seconds", 1.0))
        blocks = max(1, round(seconds / 0.25))
        for i in range(blocks):
            time.sleep(seconds / blocks)  # noqa: ASYNC251 - the blocking call under test
            await progress(100 * (i + 1) / blocks, f"block {i + 1} of {blocks}")
        self.note_models("gpu", [job.payload.get("model", "sdxl")])
        url = await job.artifacts.save("out.txt", f"made by {job.id}".encode(), "text/plain")
        return {"output_files": [url]}

    async def cancel(self, job: JobContext) -> None:
        self.cancelled.append(job.id)
        self.cancel_seen.set()


@pytest.mark.slow
async def test_a_blocking_async_connector_keeps_heartbeats_and_runs_its_job_once(
    hub_factory: Callable[..., AbstractAsyncContextManager[HubHandle]],
) -> None:
    # The job blocks its loop for 3 s in all; the hub drops a worker silent for 1 s.
    gpu = BlockingGpu()
    async with (
        hub_factory(heartbeat_timeout=1) as hub,
        running_worker(
            hub.ws_url, connectors=[gpu], services=["gpu"], heartbeat_interval=0.2
        ) as worker,
        hub.client() as client,
    ):
        job_id = await submit(
            client,
            payload={"seconds": 3, "model": "sdxl"},
            requirements={"service_type": "gpu"},
        )
        done = await wait_for_job(client, job_id, within=WAIT + 5)
        assert done["status"] == "completed", done
        assert done["attempts"] == 0
        assert done["worker_id"] == worker.worker_id
        assert worker.registrations == 1, "the hub never dropped the worker"
        assert gpu.threads == {"empq-connector-gpu"}, "process ran on the connector's own loop"
        # The upload went through the worker's HTTP client; the file is the hub's now.
        (url,) = done["result"]["output_files"]
        fetched = await client.get(url)
        assert fetched.status_code == 200
        assert fetched.text == f"made by {job_id}"
        # Noted on the connector's loop, reported by the worker on its own.
        assert worker.models_loaded() == {"gpu": ["sdxl"]}
        workers = (await client.get("/api/workers")).json()
        listed = {w["worker_id"]: w for w in workers["workers"]}
        assert listed[worker.worker_id]["connected"] is True


async def test_a_cancel_reaches_a_connector_whose_loop_blocks(
    hub_factory: Callable[..., AbstractAsyncContextManager[HubHandle]],
) -> None:
    gpu = BlockingGpu()
    async with (
        hub_factory(heartbeat_timeout=1) as hub,
        running_worker(
            hub.ws_url, connectors=[gpu], services=["gpu"], heartbeat_interval=0.2
        ) as worker,
        hub.client() as client,
    ):
        job_id = await submit(client, payload={"seconds": 30}, requirements={"service_type": "gpu"})
        await wait_for_job(client, job_id, "in_progress")
        started = time.monotonic()
        reply = await client.post(f"/api/jobs/{job_id}/cancel")
        assert reply.status_code == 200, reply.text
        assert await asyncio.to_thread(gpu.cancel_seen.wait, WAIT)
        assert gpu.cancelled == [job_id]
        # The worker lets go of the job long before the 30 s of blocking would end,
        # and takes the next one.
        async with asyncio.timeout(WAIT):
            await worker.idle.wait()
        assert time.monotonic() - started < 10
        second = await submit(
            client, payload={"seconds": 0.5}, requirements={"service_type": "gpu"}
        )
        done = await wait_for_job(client, second, within=WAIT + 5)
        assert done["status"] == "completed"
        assert (await client.get(f"/api/jobs/{job_id}")).json()["status"] == "cancelled"
        assert worker.registrations == 1


class CheckedGpu(BlockingGpu):
    """Has a health check of its own, which cannot run while `process` blocks the loop."""

    async def health(self) -> ConnectorHealth:
        return ConnectorHealth(healthy=True, detail="answers")


async def test_a_health_check_behind_a_busy_job_says_so_and_keeps_the_service() -> None:
    gpu = CheckedGpu()
    proxy = host_connectors([gpu], "own")[0]
    assert isinstance(proxy, HostedConnector)
    proxy.busy_health_wait = 0.3
    await proxy.start()
    try:
        assert (await proxy.health()).detail == "answers"
        job = JobContext(id="j1", type="gpu", payload={"seconds": 1.5})
        running = asyncio.create_task(proxy.process(job, _no_progress))
        assert await asyncio.to_thread(gpu.entered.wait, WAIT)
        busy = await proxy.health()
        assert busy.healthy is True
        assert busy.detail == "not checked: its event loop is busy running a job"
        assert (await running)["output_files"] == ["memory://out.txt"]
        assert (await proxy.health()).detail == "answers"
    finally:
        await proxy.close()


def test_built_in_and_sync_function_connectors_share_the_worker_loop() -> None:
    from tests.connectors import fn_targets

    gpu = BlockingGpu()
    sim = SimulationConnector()
    sync_fn = fn_targets.block()
    hosted = host_connectors([gpu, sim, sync_fn], "own")
    assert isinstance(hosted[0], HostedConnector)
    assert hosted[0].inner is gpu
    assert (hosted[0].name, hosted[0].services) == ("gpu", ("gpu",))
    assert hosted[1] is sim
    assert hosted[2] is sync_fn
    assert host_connectors([gpu], "shared") == [gpu]


async def _no_progress(progress: float, message: str | None = None, **_: Any) -> None:
    return
