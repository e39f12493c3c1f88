"""Workers surviving the world: hub restarts, SIGTERM drains, SIGKILL, many workers at once."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from empq.redis_server import free_port
from tests.support.hub_fixtures import HubHandle, HubProcess
from tests.worker.conftest import (
    WAIT,
    GateConnector,
    WorkerProcess,
    running_worker,
    start_worker_process,
    submit,
    wait_for_job,
)

pytestmark = pytest.mark.slow


async def wait_for_log(proc: WorkerProcess, text: str, within: float = WAIT) -> None:
    """Until the child's log shows `text`."""
    try:
        found = await proc.output.wait_for(text, within)
    except TimeoutError:
        found = False
    assert found, f"no {text!r} in the worker's log:\n{proc.log()}"


async def wait_ready(proc: WorkerProcess, within: float = WAIT) -> int:
    """Until the worker process is registered and its status port listens; its port.

    The workers here are started with `EMPQ_HTTP_PORT=0` and say which port the OS gave
    them: a port picked free beforehand can be taken by another process's outgoing
    connection before the worker binds it.
    """
    await wait_for_log(proc, "registered with hub", within)
    await wait_for_log(proc, "status port listening on", within)
    found = re.search(r"status port listening on [^\s:]+:(\d+)", proc.log())
    assert found, proc.log()
    port = int(found.group(1))
    assert port > 0, proc.log()
    async with httpx.AsyncClient(timeout=5.0) as http:
        ready = await http.get(f"http://127.0.0.1:{port}/ready")
    assert ready.status_code == 200, (ready.text, proc.log())
    return port


async def test_running_job_survives_a_hub_restart(
    hub_process: Callable[..., AbstractAsyncContextManager[HubProcess]],
) -> None:
    gate = GateConnector(upload=False)
    async with hub_process() as hubp, running_worker(hubp.ws_url, connectors=[gate]) as worker:
        async with httpx.AsyncClient(base_url=hubp.http_url, timeout=5) as client:
            first = await submit(client)
            await gate.wait_active(1)
        before = worker.registrations
        await hubp.stop()
        # The job finishes while the hub is away: its outcome is owed, not lost.
        gate.gate.set()
        async with asyncio.timeout(WAIT):
            await worker.idle.wait()
        assert worker.link.owed_jobs == [first]
        assert not worker.ready(), "/ready must say no while the hub is away"
        await hubp.start()
        async with asyncio.timeout(WAIT):
            await worker.wait_registered(after=before)
        async with httpx.AsyncClient(base_url=hubp.http_url, timeout=5) as client:
            done = await wait_for_job(client, first)
            assert done["status"] == "completed", "the result made while the hub was down counts"
            assert done["attempts"] == 0
            second = await submit(client)
            assert (await wait_for_job(client, second))["status"] == "completed"


async def test_sigterm_lets_the_running_job_finish_then_exits_0(
    hub: HubHandle, tmp_path: Path
) -> None:
    proc = start_worker_process(tmp_path, hub.ws_url, EMPQ_HTTP_PORT="0", EMPQ_SHUTDOWN_GRACE="20")
    try:
        await wait_ready(proc)
        async with hub.client() as client:
            running = await submit(client, payload={"duration": 1.0, "steps": 5})
            await wait_for_job(client, running, "in_progress")
            proc.signal(signal.SIGTERM)
            waiting = await submit(client)
            assert await proc.wait() == 0, proc.log()
            assert (await wait_for_job(client, running))["status"] == "completed"
            left = (await client.get(f"/api/jobs/{waiting}")).json()
            assert left["status"] == "queued", "a draining worker takes no new job"
    finally:
        if proc.proc.poll() is None:
            proc.proc.kill()


async def test_sigterm_hands_back_a_job_that_outlives_the_grace(
    hub: HubHandle, tmp_path: Path
) -> None:
    proc = start_worker_process(tmp_path, hub.ws_url, EMPQ_HTTP_PORT="0", EMPQ_SHUTDOWN_GRACE="0.3")
    try:
        await wait_ready(proc)
        async with hub.client() as client:
            # max_retries 0: a drain that spent the attempt would end the job failed.
            job_id = await submit(client, payload={"duration": 60, "steps": 60}, max_retries=0)
            await wait_for_job(client, job_id, "in_progress")
            proc.signal(signal.SIGTERM)
            assert await proc.wait() == 0, proc.log()
            back = await wait_for_job(client, job_id, "queued")
            assert back["worker_id"] in (None, "")
            assert back["attempts"] == 0, "a hand-back is not an attempt"
    finally:
        if proc.proc.poll() is None:
            proc.proc.kill()


async def test_sigkill_mid_job_and_another_worker_finishes_it(
    hub_factory: Callable[..., AbstractAsyncContextManager[HubHandle]], tmp_path: Path
) -> None:
    async with hub_factory(heartbeat_timeout=2, retry_delays=[0]) as hub:
        doomed = start_worker_process(
            tmp_path, hub.ws_url, EMPQ_HTTP_PORT="0", EMPQ_HEARTBEAT_INTERVAL="0.5"
        )
        try:
            await wait_ready(doomed)
            async with hub.client() as client:
                job_id = await submit(client, payload={"duration": 30, "steps": 30})
                started = await wait_for_job(client, job_id, "in_progress")
                assert started["worker_id"] == doomed.worker_id
                doomed.proc.kill()
                await doomed.wait()
                rescue = GateConnector()
                rescue.gate.set()
                async with running_worker(
                    hub.ws_url, connectors=[rescue], heartbeat_interval=0.5
                ) as rescuer:
                    done = await wait_for_job(client, job_id, "completed", within=15)
                    assert done["worker_id"] == rescuer.worker_id
                    assert done["attempts"] >= 1
        finally:
            if doomed.proc.poll() is None:
                doomed.proc.kill()


async def _metric(http: httpx.AsyncClient, port: int, name: str) -> float:
    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_three_workers_complete_300_jobs_exactly_once(hub: HubHandle, tmp_path: Path) -> None:
    procs = [
        start_worker_process(tmp_path, hub.ws_url, EMPQ_HTTP_PORT="0", EMPQ_CONCURRENT_JOBS="4")
        for _ in range(3)
    ]
    try:
        ports = [await wait_ready(proc) for proc in procs]
        async with hub.client() as client:
            jobs: list[dict[str, Any]] = [
                {"type": "sim", "requirements": {"service_type": "simulation"}, "payload": {}}
                for _ in range(300)
            ]
            reply = await client.post("/api/jobs/batch", json={"jobs": jobs})
            assert reply.status_code == 201, reply.text
            ids = [j["job_id"] for j in reply.json()["jobs"]]
            for job_id in ids:
                done = await wait_for_job(client, job_id, within=30)
                assert done["status"] == "completed", done
                assert done["attempts"] == 0, done
        async with httpx.AsyncClient(timeout=2) as http:
            counts = [
                await _metric(http, p, 'empq_worker_jobs_total{outcome="completed"}') for p in ports
            ]
        assert sum(counts) == 300, f"jobs run {counts}: some job ran twice or not at all"
        assert all(c > 0 for c in counts), f"every worker should have pulled work: {counts}"
    finally:
        for proc in procs:
            proc.signal(signal.SIGTERM)
        for proc in procs:
            assert await proc.wait() == 0, proc.log()


async def test_sigterm_while_the_hub_is_unreachable_exits_0_at_once(tmp_path: Path) -> None:
    proc = start_worker_process(tmp_path, f"ws://127.0.0.1:{free_port()}")
    try:
        await wait_for_log(proc, "hub link down")
        proc.signal(signal.SIGTERM)
        assert await proc.wait(within=3) == 0, proc.log()
    finally:
        if proc.proc.poll() is None:
            proc.proc.kill()
