"""Leader leases on a real Redis: one holder at a time, even through a long round."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from empq.hub.leases import Leases, run_leased
from empq.keys import Keys

TTL = 0.6


async def test_a_round_longer_than_the_ttl_keeps_the_lease_and_a_dead_holder_loses_it(
    redis_client: Redis,
) -> None:
    redis = redis_client
    keys = Keys("leasetest")
    holder, other = Leases(redis, keys, "a"), Leases(redis, keys, "b")
    started, finish = asyncio.Event(), asyncio.Event()

    async def work() -> float | None:
        started.set()
        await finish.wait()
        return None

    task = asyncio.create_task(run_leased(holder, "t", 60, work, ttl=TTL))
    try:
        await asyncio.wait_for(started.wait(), 5)
        # For three TTLs the round goes on: its holder renews, nobody else gets the lease.
        for _ in range(18):  # sampling the lease over three TTLs, not waiting on it
            assert not await other.hold("t", TTL)
            await asyncio.sleep(TTL / 6)
        assert "t" in holder.held
        finish.set()
    finally:
        task.cancel()  # the holder dies without giving the lease up
    # Its lease then expires within one TTL, and the other takes over.
    for _ in range(18):  # Redis expires it: there is no event to wait for
        if await other.hold("t", TTL):
            break
        await asyncio.sleep(TTL / 6)
    else:
        raise AssertionError("the dead holder's lease never expired")
