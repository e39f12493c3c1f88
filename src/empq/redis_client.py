"""The Redis client for an `EMPQ_REDIS_URL`: one server, a Redis Cluster, or Sentinel.

`redis://` and `rediss://` (TLS) name one server (or a proxy); `redis+cluster://` and
`rediss+cluster://` name any node of a Redis Cluster, whose other nodes the client
discovers. Every key of a deployment shares one hash tag (see `keys.py`), so the whole
queue lives in one slot and every script runs on the node that owns it.

`redis+sentinel://[[user]:password@]host:port[,host:port...]/SERVICE[/db]` (and
`rediss+sentinel://`, TLS to the servers and sentinels) names the sentinels that watch
the primary called SERVICE: each new connection asks them for the current primary
(redis-py's `Sentinel`), so after a failover the hub's next connections go to the
promoted replica. The password is the Redis servers'; the sentinels are asked without one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme: TLS
_DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    """What a `redis+sentinel://` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False


def sentinel_target(url: str) -> SentinelTarget:
    """Parse a `redis+sentinel://` URL; `ValueError` names the part that is wrong."""
    scheme, _, rest = url.partition("://")
    if scheme not in _SENTINEL_SCHEMES:
        raise ValueError(f"not a sentinel URL: {scheme}://")
    rest = rest.partition("?")[0]
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":") if ":" in item else (item, "", "")
        host = host.strip("[]")
        if not host:
            raise ValueError(f"sentinel address {item.strip()!r}: expected host:port")
        if colon and not port.isdigit():
            raise ValueError(f"sentinel address {item.strip()!r}: port must be a number")
        sentinels.append((host, int(port) if colon else _DEFAULT_SENTINEL_PORT))
    service, _, db = path.partition("/")
    if not service:
        raise ValueError("the sentinel URL needs a service name: redis+sentinel://host:port/NAME")
    if db and not db.isdigit():
        raise ValueError(f"database {db!r} must be a number")
    return SentinelTarget(
        tuple(sentinels),
        unquote(service),
        int(db or 0),
        username,
        password,
        _SENTINEL_SCHEMES[scheme],
    )


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
    if scheme in _SENTINEL_SCHEMES:
        return _sentinel_client(sentinel_target(url), options)
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), 3, (RedisConnectionError,))
    pool = WaitingPool.from_url(url, retry=retry, **options)
    return Redis.from_pool(pool)


def _sentinel_client(target: SentinelTarget, options: dict[str, Any]) -> Redis:
    # The sentinels get a short timeout of their own: an unreachable one is skipped
    # for the next, and a connection waits on discovery only that long per sentinel.
    sentinel_options: dict[str, Any] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    if target.ssl:
        sentinel_options["ssl"] = True
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options)
    server_options = {**options, "db": target.db, "ssl": target.ssl}
    if target.username is not None:
        server_options["username"] = target.username
    if target.password is not None:
        server_options["password"] = target.password
    # A retried command (after the primary died) reconnects, which asks the sentinels
    # again: the back-off spans the seconds a failover takes.
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.1), 10, (RedisConnectionError,))
    client: SentinelRedis = sentinel.master_for(
        target.service_name,
        redis_class=SentinelRedis,
        connection_pool_class=WaitingSentinelPool,
        connection_class=FollowingSSLConnection if target.ssl else FollowingConnection,
        retry=retry,
        **server_options,
    )
    client.sentinel_manager = sentinel
    return client


class SentinelRedis(Redis):
    """A client of the primary that Sentinel names; closing it closes the sentinels' clients."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the connections, then the sentinel clients."""
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            await self.sentinel_manager.aclose()


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


class WaitingSentinelPool(WaitingPool, SentinelConnectionPool):
    """`WaitingPool`'s waiting for the pool of a Sentinel-named primary."""


class FollowingConnection(SentinelManagedConnection):
    """A connection to the primary that asks the sentinels where it is on every (re)connect.

    redis-py's own asks them in `connect()`, but a command retried after its connection
    dropped reconnects through `connect_check_health`, to the address it had: the
    dead primary's, so every retry of that command failed until it gave up.
    """

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        """Connect (if not connected) to the primary the sentinels name now."""
        if not self.is_connected:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super().connect_check_health(check_health, retry_socket_connect)


class FollowingSSLConnection(FollowingConnection, SentinelManagedSSLConnection):
    """`FollowingConnection` over TLS."""


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
