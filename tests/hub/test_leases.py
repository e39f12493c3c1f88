"""Leader leases on a real Redis: one holder at a time, even through a long round."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from redis.asyncio import Redis

from empq.hub.leases import Leases, run_leased
from empq.keys import Keys
from empq.redis_server import RedisServer
from tests.support.hub_fixtures import start_hub

TTL = 0.6


async def test_a_round_longer_than_the_ttl_keeps_the_lease_and_a_dead_holder_loses_it(
    redis_client: Redis,
) -> None:
    keys = Keys("leasetest")
    holder, other = Leases(redis_client, keys, "a"), Leases(redis_client, keys, "b")
    holds: asyncio.Queue[bool] = asyncio.Queue()  # each acquisition or renewal's outcome
    hold = holder.hold

    async def noting(name: str, ttl: float) -> bool:
        got = await hold(name, ttl)
        holds.put_nowait(got)
        return got

    holder.hold = noting  # type: ignore[method-assign]
    finish = asyncio.Event()

    async def work() -> float | None:
        await finish.wait()
        return None

    task = asyncio.create_task(run_leased(holder, "t", 60, work, ttl=TTL))
    try:
        # The round goes on for three TTLs (a renewal every third of one): its holder
        # keeps the lease, and nobody else gets it.
        for _ in range(10):
            assert await asyncio.wait_for(holds.get(), TTL)
            assert not await other.hold("t", TTL)
        finish.set()
    finally:
        task.cancel()  # the holder dies without giving the lease up
    # Its lease expires within one TTL (Redis says when), and the other takes over.
    pubsub = redis_client.pubsub()
    await redis_client.config_set("notify-keyspace-events", "Kx")
    try:
        await pubsub.subscribe(f"__keyspace@0__:{keys.lease('t')}")
        if await redis_client.exists(keys.lease("t")):
            async with asyncio.timeout(3 * TTL):
                async for message in pubsub.listen():
                    if message["type"] == "message" and message["data"] == b"expired":
                        break
        assert await other.hold("t", TTL)
    finally:
        await redis_client.config_set("notify-keyspace-events", "")
        await pubsub.aclose()


async def test_a_renewal_in_flight_when_the_round_ends_is_finished_not_cancelled(
    redis_client: Redis,
) -> None:
    """Cancelling a renewal mid-call would cost the connection it was using."""
    keys = Keys("leasetest-end")
    holder = Leases(redis_client, keys, "a")
    hold = holder.hold
    calls = 0
    renewed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    finish = asyncio.Event()

    async def ending_the_round_meanwhile(name: str, ttl: float) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first renewal: Redis holds it while the round ends
            await redis_client.client_pause(int(TTL * 500), all=True)
            asyncio.get_running_loop().call_later(TTL / 10, finish.set)
            got = await hold(name, ttl)
            renewed.set_result(got)
            return got
        return await hold(name, ttl)

    holder.hold = ending_the_round_meanwhile  # type: ignore[method-assign]
    rounds = 0

    async def work() -> float | None:
        nonlocal rounds
        rounds += 1
        await finish.wait()
        return None

    task = asyncio.create_task(run_leased(holder, "t", 60, work, ttl=TTL))
    try:
        assert await asyncio.wait_for(renewed, 2 * TTL), "the renewal should have held"
        assert rounds == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_release_all_gives_up_only_this_holders_leases(redis_client: Redis) -> None:
    keys = Keys("leasetest-release")
    a, b = Leases(redis_client, keys, "a"), Leases(redis_client, keys, "b")
    for holder, name in ((a, "one"), (a, "two"), (b, "three")):
        assert await holder.hold(name, 30)
    await a.release_all()
    # A peer takes a's leases at once, without waiting for them to expire; b keeps its own.
    for name in ("one", "two"):
        assert await b.hold(name, 30)
    assert await redis_client.get(keys.lease("three")) == b"b"
    assert not a.held
    await a.release_all()  # nothing held: no call, no error


async def test_a_hub_whose_redis_is_gone_stops_promptly(tmp_path: Path) -> None:
    """Its leases are given up in one call: one call's retries, not one per task."""
    with RedisServer(persistent=False) as redis:
        async with start_hub(redis.url, tmp_path) as handle:
            for n in range(6):  # besides those of its own tasks, which it may not hold yet
                assert await handle.hub.leases.hold(f"extra-{n}", 30)
            redis.stop()
            started = time.monotonic()
        assert time.monotonic() - started < 3.0
