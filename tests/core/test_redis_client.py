"""The hub's and worker's Redis client under a burst of concurrent calls."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from empq.broker.core import Broker
from empq.config import BrokerSettings
from empq.redis_client import make_client
from empq.redis_server import RedisServer


async def test_a_burst_past_max_connections_waits_instead_of_failing(redis_url: str) -> None:
    # A thousand workers heartbeating at once is a burst of concurrent calls; past the
    # pool's size they must queue for a connection, not fail (redis-py's plain pool
    # raises MaxConnectionsError there).
    client = make_client(redis_url, max_connections=3)
    try:
        # BLPOP with a short timeout holds its connection while it waits.
        replies = await asyncio.gather(
            *(client.blpop([f"empty-{i}"], timeout=0.05) for i in range(12)),
            *(client.incr("burst") for _ in range(50)),
        )
        assert replies[:12] == [None] * 12
        assert int(await client.get("burst") or 0) == 50
        assert len(client.connection_pool._in_use_connections) == 0  # type: ignore[attr-defined]
        assert len(client.connection_pool._available_connections) <= 3  # type: ignore[attr-defined]
    finally:
        await client.aclose()


async def test_socket_timeout_fails_a_call_to_a_frozen_redis_and_none_waits_it_out() -> None:
    # EMPQ_REDIS_SOCKET_TIMEOUT: set, a call to a Redis that stopped answering fails
    # after that long; unset (the default), the call waits and completes once Redis
    # answers again.
    with RedisServer(persistent=False) as server:
        assert server.process is not None
        broker = await Broker.connect(
            BrokerSettings(redis_url=server.url, redis_socket_timeout=0.3)
        )
        bounded = broker.redis
        unbounded = make_client(server.url)
        assert unbounded.connection_pool.connection_kwargs["socket_timeout"] is None
        try:
            await bounded.set("k", "v")
            await unbounded.get("k")
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                with pytest.raises(RedisTimeoutError):
                    await asyncio.wait_for(bounded.get("k"), 5)
                waiting = asyncio.ensure_future(unbounded.get("k"))
                done, _ = await asyncio.wait([waiting], timeout=0.6)
                assert not done  # outlived the timeout that failed the other client
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            assert await asyncio.wait_for(waiting, 5) == b"v"
        finally:
            await bounded.aclose()
            await unbounded.aclose()
