"""Real `empq worker` processes whose class connector blocks its `async def` for longer
than the hub's heartbeat timeout.

Each such connector runs on an event loop of its own (`empq.worker.hosting`), so the
workers keep heartbeating: no worker is dropped, no job is requeued or run twice. The
control, `EMPQ_CONNECTOR_LOOP=shared`, shows the failure this prevents: the blocked
worker is dropped for silence and its job runs again.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from tests.support.hub_fixtures import HubProcess
from tests.system.support import report
from tests.system.test_resilience import wait_ready
from tests.worker.conftest import (
    WAIT,
    WorkerProcess,
    start_worker_process,
    stop_workers,
    submit,
    wait_for_job,
)

pytestmark = pytest.mark.slow

JOBS = 16
WORKERS = 2
#: Each job blocks its loop this long at a stretch; the hub drops a worker silent for 1.5 s.
BLOCK_SECONDS = 2.5
HEARTBEAT_TIMEOUT = "1.5"
CONNECTOR = "tests.system.blocking_gpu:BlockingGpu"


def _workers(tmp: Path, ws_url: str, runs: Path, count: int, **env: str) -> list[WorkerProcess]:
    return [
        start_worker_process(
            tmp,
            ws_url,
            EMPQ_CONNECTORS=CONNECTOR,
            EMPQ_HEARTBEAT_INTERVAL="0.3",
            EMPQ_HTTP_PORT="0",
            EMPQ_TEST_RUNS_FILE=str(runs),
            **env,
        )
        for _ in range(count)
    ]


async def test_blocking_async_connectors_in_real_workers_run_each_job_once(
    hub_process: Callable[..., AbstractAsyncContextManager[HubProcess]], tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    runs.touch()
    started = time.monotonic()
    async with hub_process(EMPQ_HEARTBEAT_TIMEOUT=HEARTBEAT_TIMEOUT) as hubp:
        workers = _workers(tmp_path, hubp.ws_url, runs, WORKERS)
        try:
            for w in workers:
                await wait_ready(w)
            async with httpx.AsyncClient(base_url=hubp.http_url, timeout=10) as client:
                ids = [
                    await submit(
                        client,
                        type="gpu",
                        payload={"seconds": BLOCK_SECONDS, "blocks": 1},
                        requirements={"service_type": "gpu"},
                    )
                    for _ in range(JOBS)
                ]
                within = WAIT + JOBS * BLOCK_SECONDS
                final = [await wait_for_job(client, j, within=within) for j in ids]
                left = (await client.get("/api/stats")).json()
        finally:
            await stop_workers(workers)
    ran = collections.Counter(runs.read_text().split())
    lost = sum(1 for job in final if job["status"] != "completed")
    twice = sum(1 for j in ids if ran[j] > 1)
    stuck = sum(left["jobs_by_status"].get(s, 0) for s in ("assigned", "accepted", "in_progress"))
    registrations = [w.output.text().count("registered with hub") for w in workers]
    report(
        "blocking-async-connector",
        jobs=JOBS,
        workers=WORKERS,
        block_seconds=BLOCK_SECONDS,
        heartbeat_timeout=float(HEARTBEAT_TIMEOUT),
        lost=lost,
        run_twice=twice,
        stuck=stuck,
        attempts=sum(job["attempts"] for job in final),
        registrations=registrations,
        seconds=round(time.monotonic() - started, 1),
    )
    assert lost == 0, [j for j in final if j["status"] != "completed"]
    assert twice == 0, ran
    assert stuck == 0, left
    assert all(job["attempts"] == 0 for job in final)
    assert registrations == [1] * WORKERS, "a worker was dropped for silence"


async def test_the_same_connector_on_the_workers_loop_is_dropped_and_runs_again(
    hub_process: Callable[..., AbstractAsyncContextManager[HubProcess]], tmp_path: Path
) -> None:
    # The control: what the connector's own loop prevents.
    runs = tmp_path / "runs.txt"
    runs.touch()
    async with hub_process(EMPQ_HEARTBEAT_TIMEOUT=HEARTBEAT_TIMEOUT) as hubp:
        (worker,) = _workers(tmp_path, hubp.ws_url, runs, 1, EMPQ_CONNECTOR_LOOP="shared")
        try:
            await wait_ready(worker)
            async with httpx.AsyncClient(base_url=hubp.http_url, timeout=10) as client:
                job_id = await submit(
                    client,
                    type="gpu",
                    payload={"seconds": BLOCK_SECONDS, "blocks": 1},
                    requirements={"service_type": "gpu"},
                    max_retries=0,
                )
                # Dropped for silence while blocked: the hub tells it so once it answers.
                assert await worker.output.wait_for("dropped for silence", WAIT)
                assert await worker.output.wait_for("hub refused outcome", WAIT)
                job = await wait_for_job(client, job_id, within=WAIT)
        finally:
            await stop_workers([worker])
    assert job["status"] != "completed" or job["attempts"] > 0, job
