"""The hub's and worker's Redis client under a burst of concurrent calls."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from pydantic import ValidationError as PydanticValidationError
from redis.exceptions import TimeoutError as RedisTimeoutError

from empq.broker.core import Broker
from empq.config import BrokerSettings
from empq.redis_client import make_client, sentinel_target
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


def test_sentinel_url_names_the_sentinels_service_database_and_password() -> None:
    target = sentinel_target(
        "redis+sentinel://:s3cr%40t@10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster/2"
    )
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert target.service_name == "mymaster"
    assert target.db == 2
    assert target.password == "s3cr@t"
    assert target.username is None
    assert not target.ssl
    tls = sentinel_target("rediss+sentinel://app:pw@s1:5000/queue")
    assert (tls.username, tls.password, tls.db, tls.ssl) == ("app", "pw", 0, True)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://s1:26379", "needs the service name"),
        ("redis+sentinel://s1:26379/", "needs the service name"),
        ("redis+sentinel://s1:port/mymaster", "is not a number from 1 to 65535"),
        ("redis+sentinel://s1:26379/mymaster/zero", "database 'zero' is not a number"),
        ("redis+sentinel://a:1,:26379/mymaster", "host missing"),
        ("http://localhost:6379", "unknown scheme"),
        ("localhost:6379", "must look like"),
    ],
)
def test_a_bad_redis_url_is_refused_naming_the_setting(url: str, says: str) -> None:
    with pytest.raises(PydanticValidationError) as caught:
        BrokerSettings(redis_url=url)
    error = caught.value.errors()[0]
    assert error["loc"] == ("redis_url",)
    assert says in error["msg"]


def test_every_documented_scheme_is_accepted() -> None:
    for url in (
        "redis://h:6379/0",
        "rediss://u:p@h:6380/1",
        "unix:///run/redis.sock",
        "redis+cluster://h:7000",
        "rediss+cluster://h:7000",
        "redis+sentinel://h:26379/mymaster",
    ):
        assert BrokerSettings(redis_url=url).redis_url == url
