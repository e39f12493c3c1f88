"""`watch` survives the hub going away and coming back: nothing that happened is missed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from empq.models import Job
from empq.sdk import AsyncClient
from empq.status import JobStatus
from tests.sdk import scripted
from tests.support.hub_fixtures import HubProcess, raw_worker


@pytest.mark.slow
async def test_watch_sees_the_ending_that_happened_after_a_hub_restart(
    hub_process: Callable[..., AbstractAsyncContextManager[HubProcess]],
) -> None:
    async with hub_process() as hub, AsyncClient(hub.http_url, poll_interval=30) as client:
        job = await client.submit(type="render", requirements={"service_type": "simulation"})
        snapshots: list[Job] = []
        first = asyncio.Event()

        async def follow() -> None:
            async for snapshot in client.watch(job.id, timeout=40):
                snapshots.append(snapshot)
                first.set()

        watcher = asyncio.ensure_future(follow())
        await asyncio.wait_for(first.wait(), 10)
        await hub.stop()
        await hub.start()
        async with raw_worker(hub.ws_url, "w-after-restart") as peer:
            assigned = await scripted.take_job(peer)
            await scripted.complete(peer, assigned, {"output_files": []})
        # with a 30 s poll interval, ending in time means the watch reconnected and resubscribed
        await asyncio.wait_for(watcher, 20)
    assert snapshots[0].status == JobStatus.QUEUED
    assert snapshots[-1].status == JobStatus.COMPLETED
    assert snapshots[-1].worker_id == "w-after-restart"
