"""Worker records in Redis: saves of one loop turn share a write, and lose nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from redis.asyncio import Redis

from empq.eager import start_eagerly
from empq.hub.connections import Connection
from empq.hub.registry import Registry
from empq.keys import Keys
from empq.models import WorkerCapabilities
from empq.status import WorkerStatus
from tests.support.hub_fixtures import HubHandle, raw_worker


async def test_a_hundred_heartbeats_at_once_are_all_acked_and_recorded(hub: HubHandle) -> None:
    async with asyncio.TaskGroup() as tg:
        peers = [tg.create_task(_connect(hub, f"w{i}")) for i in range(100)]
    workers = [p.result() for p in peers]
    try:
        redis = hub.hub.broker.redis
        before = await redis.zrange(hub.hub.broker.keys.heartbeats, 0, -1, withscores=True)
        assert len(before) == 100
        await asyncio.gather(
            *(w.send({"type": "worker_heartbeat", "status": "idle"}) for w, _ in workers)
        )
        acks = await asyncio.gather(*(w.expect("worker_heartbeat_ack") for w, _ in workers))
        assert {a["worker_id"] for a in acks} == {f"w{i}" for i in range(100)}
        after = dict(await redis.zrange(hub.hub.broker.keys.heartbeats, 0, -1, withscores=True))
        assert all(after[wid] >= score for wid, score in before)
    finally:
        for _, ctx in workers:
            await ctx.__aexit__(None, None, None)


async def _connect(hub: HubHandle, worker_id: str) -> tuple[Any, Any]:
    ctx = raw_worker(hub.ws_url, worker_id)
    return await ctx.__aenter__(), ctx


async def test_a_detach_in_the_same_turn_as_a_save_is_not_undone(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    keys = Keys("regtest")
    registry = Registry(redis, keys, "hub-1")
    try:
        conn = cast(Connection, object())  # the registry only keeps it
        lw = await registry.register(conn, "w", WorkerCapabilities(), WorkerStatus.IDLE)
        # A heartbeat's save and the socket closing, in one loop turn:
        # Run up to its wait for the shared write: the save is queued, not yet written.
        save = start_eagerly(registry.heartbeat(lw, WorkerStatus.IDLE, None, None))
        assert save is not None
        assert registry._dirty  # the interleaving this test is about
        await registry.detach(lw)
        await save
        record = json.loads(await redis.hget(keys.workers, "w") or b"{}")
        assert record["connected"] is False
    finally:
        await redis.aclose()
