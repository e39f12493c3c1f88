"""The hub's and worker's Redis client under a burst of concurrent calls."""

from __future__ import annotations

import asyncio

from empq.redis_client import make_client


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
