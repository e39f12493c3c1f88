"""Liveness that heals: a worker the hub dropped for silence is told, re-registers, carries on."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.support.hub_fixtures import HubHandle, RawPeer
from tests.worker.conftest import WAIT, running_worker, start_worker_process, submit, wait_for_job

HubFactory = Callable[..., AbstractAsyncContextManager[HubHandle]]


@pytest.mark.slow
async def test_a_worker_frozen_past_the_heartbeat_timeout_comes_back_and_works(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    async with hub_factory(heartbeat_timeout=1) as hub, RawPeer.connect(hub.ws_url) as monitor:
        await monitor.request(
            {"type": "subscribe_worker_updates", "enabled": True}, "subscription_confirmed"
        )
        proc = start_worker_process(tmp_path, hub.ws_url, EMPQ_HEARTBEAT_INTERVAL="0.2")
        mine = {"where": lambda m: m.get("worker_id") == proc.worker_id, "within": WAIT}
        try:
            await monitor.expect("worker_registered", **mine)
            proc.signal(signal.SIGSTOP)  # silent: no heartbeats, socket left open
            gone = await monitor.expect("worker_disconnected", **mine)
            assert gone["reason"] == "heartbeat timeout"
            proc.signal(signal.SIGCONT)
            # Told and closed by the hub, it registers again by itself...
            await monitor.expect("worker_registered", **mine)
            assert "dropped for silence" in proc.log()
            # ...and takes work.
            async with hub.client() as client:
                job_id = await submit(client)
                done = await wait_for_job(client, job_id)
                assert done["status"] == "completed"
                assert done["worker_id"] == proc.worker_id
                listed = (await client.get(f"/api/workers/{proc.worker_id}")).json()
                assert listed["connected"] is True
                assert listed["status"] != "offline"
        finally:
            proc.signal(signal.SIGCONT)
            proc.signal(signal.SIGTERM)
            await proc.wait()


async def test_a_message_refused_as_not_registered_makes_the_worker_register_again(
    hub: HubHandle,
) -> None:
    async with running_worker(hub.ws_url, heartbeat_interval=0.2) as worker:
        # What a hub does when another hub's heartbeat monitor gave up on a worker
        # connected here: the registration ends, the socket stays open.
        lw = hub.hub.registry.local[worker.worker_id]
        hub.hub.registry.drop_local(lw)
        lw.conn.worker = None
        await asyncio.wait_for(worker.wait_registered(after=1), WAIT)
        async with hub.client() as client:
            done = await wait_for_job(client, await submit(client))
            assert done["status"] == "completed"
            assert done["worker_id"] == worker.worker_id
