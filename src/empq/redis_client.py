"""The Redis client for an `EMPQ_REDIS_URL`: a single server or a Redis Cluster.

`redis://` and `rediss://` (TLS) name one server (or a proxy); `redis+cluster://` and
`rediss+cluster://` name any node of a Redis Cluster, whose other nodes the client
discovers. Every key of a deployment shares one hash tag (see `keys.py`), so the whole
queue lives in one slot and every script runs on the node that owns it.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    """Whether the URL names a Redis Cluster."""
    return url.partition("://")[0] in _CLUSTER_SCHEMES


def make_client(
    url: str, max_connections: int = 1000, socket_timeout: float | None = None
) -> Redis:
    """A client for `url` (not yet connected). Replies are bytes (no decoding).

    `socket_timeout` None (the default) lets a call wait for Redis as long as the
    connection lives; TCP keepalive notices a peer that is gone. redis-py 8's own
    default of 5 s runs every command's write under `asyncio.wait_for`, a task per
    command, which costs more than the command itself on the claim and submit paths.
    Blocking reads (XREAD BLOCK) carry their own timeouts either way.

    A command that meets a dropped connection (Redis restarted, a proxy closed an
    idle socket) is tried again on a new one, up to three times with a short
    back-off; a timeout is not retried (the command may still be running). redis-py's
    default for a pool made from a URL is not to retry, so every pooled connection
    would fail one command after each Redis restart. Script calls do not go through
    the pool (see `scripts.ScriptChannel`), so no script is run twice by a retry. (A
    Redis Cluster client keeps its own retry policy.)
    """
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "socket_timeout": socket_timeout,
        "socket_keepalive": True,
    }
    scheme, sep, rest = url.partition("://")
    if scheme in _CLUSTER_SCHEMES:
        cluster: Any = RedisCluster.from_url(f"{_CLUSTER_SCHEMES[scheme]}{sep}{rest}", **options)
        # RedisCluster speaks the same commands; typed as Redis for the callers.
        return cluster  # type: ignore[no-any-return]
    pool = WaitingPool.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3, (RedisConnectionError,)),
        **options,
    )
    return Redis.from_pool(pool)


class WaitingPool(ConnectionPool):
    """A connection pool that waits for a free connection when all are in use.

    Each call in flight holds one connection, opened on demand up to
    `max_connections`. redis-py's plain pool raises `MaxConnectionsError` past that,
    so a burst (a thousand workers' heartbeats at once) would fail calls; its blocking
    pool waits, but costs a condition and a timer on every command (a third of the
    claim path's time). This one takes the plain pool's path and waits only when the
    pool is full, until a connection is released.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._released = asyncio.Event()

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        while True:
            try:
                get = super().get_connection
                return cast(AbstractConnection, await get(*args, **kwargs))  # type: ignore[no-untyped-call]
            except MaxConnectionsError:
                self._released.clear()
                await self._released.wait()

    async def release(self, connection: AbstractConnection) -> None:
        await super().release(connection)
        self._released.set()


def own_connection(redis: Redis, role: str) -> AbstractConnection:
    """A connection outside `redis`'s pool, with its settings (not yet connected).

    Named `<client name>:<role>` so that `CLIENT LIST` tells it from the pool's, and
    without a socket timeout: its owner keeps it waiting for replies and applies
    timeouts per call.
    """
    pool = redis.connection_pool
    kwargs = pool.connection_kwargs
    name = f"{kwargs.get('client_name') or 'empq'}:{role}"
    conn: AbstractConnection = pool.connection_class(
        **{**kwargs, "socket_timeout": None, "client_name": name}
    )
    return conn
