"""The Lua scripts of `empq/lua/`, each registered once and run by SHA.

Every script call goes to Redis on one connection of its own (`ScriptChannel`),
pipelined: a call is written as soon as the calls of its event-loop turn are known,
without waiting for the replies of earlier ones, and replies are matched to calls
in order. Calls made in the same turn (sixteen workers completing at once, a
worker's batch of reports) go out in one write; `flush()` writes what is queued at
once, for a caller that is timing-critical (the submission that reserves its job
for an idle worker). Each call still runs as its own script, atomically, and gets
its own reply or error.

Why not redis-py's pipeline: it takes a connection from the pool per batch, and the
pool's check that the connection has nothing left to read yields to the event loop
before anything is written, so the write waits behind whatever else the loop has to
do; with the batch's task and the pipeline object, that was half a millisecond of a
two-millisecond dispatch. The channel keeps one connection open instead, writes in
the caller's own call, and reads replies in one reader task. It is made and spoken
through redis-py (a connection of the client's own class and settings, and its
`read_response`), so TLS, authentication and RESP settings are the client's own;
commands are packed by hiredis's C packer (redis-py's without hiredis). `CLIENT
LIST` names it `empq:scripts`.

On NOSCRIPT (after a Redis restart or SCRIPT FLUSH) the call is sent again as
EVAL with the script's source, which runs it and loads it for the calls after. If
the connection drops, every call written on it and not yet answered fails with that
error (as a command on a dropped connection does: it may or may not have run); the
reader notices the drop at once, and the next call opens a new connection. A Redis
Cluster client runs each call on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from empq.eager import start_eagerly

try:  # redis[hiredis] brings it; packing in C costs a fifth of redis-py's Python packer
    import hiredis
except ImportError:  # pragma: no cover - redis-py alone
    hiredis = None  # type: ignore[assignment]


@dataclass(slots=True)
class _Call:
    script: AsyncScript
    keys: Sequence[Any]
    args: Sequence[Any]
    fut: asyncio.Future[Any]
    #: Sent as EVAL with the source (which also loads it) after an EVALSHA got NOSCRIPT.
    by_source: bool = False

    def command(self) -> tuple[Any, ...]:
        head = ("EVAL", self.script.script) if self.by_source else ("EVALSHA", self.script.sha)
        return (*head, len(self.keys), *self.keys, *self.args)


NAMES = (
    "submit",
    "peek",
    "claim",
    "accept",
    "progress",
    "complete",
    "fail",
    "requeue",
    "cancel",
    "retry",
    "promote",
    "cleanup",
    "gc_signature",
)


def source(name: str) -> str:
    """The text of `lua/<name>.lua`."""
    return (resources.files("empq.lua") / f"{name}.lua").read_text(encoding="utf-8")


class ScriptChannel:
    """Script calls pipelined on one dedicated connection, replies read in order."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._queued: list[_Call] = []  # this turn's calls, not written yet
        self._written: deque[_Call] = deque()  # written, reply not read yet
        self._flush_due = False
        self._conn: AbstractConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._connect_error: Exception | None = None
        self._reader: asyncio.Task[None] | None = None
        # EMPQ_REDIS_SOCKET_TIMEOUT: how long a written call may wait for its reply.
        self._reply_timeout: float | None = redis.connection_pool.connection_kwargs.get(
            "socket_timeout"
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Queue one call (written at the end of this turn); the future resolves to its reply."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append(_Call(script, keys, args, fut))
        self._flush_soon()
        return fut

    def _flush_soon(self) -> None:
        """Write what is queued at the end of this turn (once, however many calls)."""
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write every queued call now, in one write (or once connected)."""
        self._flush_due = False
        if not self._queued:
            return
        if self._closed:
            self._fail(self._queued, RedisConnectionError("script channel closed"))
            self._queued = []
            return
        conn = self._conn
        if conn is None or not conn.is_connected:
            self._connect_soon()  # which flushes when connected
            return
        batch, self._queued = self._queued, []
        packed: list[bytes] = []
        written: list[_Call] = []
        for call in batch:
            try:
                packed.append(_pack(conn, call.command()))
            except (TypeError, ValueError, DataError) as exc:  # an argument Redis cannot take
                _settle(call.fut, DataError(f"script {call.script.sha[:8]}: {exc}"))
                continue
            written.append(call)
        if not written:
            return
        self._written.extend(written)
        try:
            # Completes in this call unless the socket is applying back-pressure.
            rest = start_eagerly(conn.send_packed_command(packed, check_health=False))
        except Exception as exc:  # noqa: BLE001 - the connection failed: every call on it did
            self._broken(conn, exc)
            return
        if rest is not None:
            self._keep(rest).add_done_callback(lambda t: self._write_done(conn, t))
        if self._reply_timeout is not None:
            last = written[-1].fut
            asyncio.get_running_loop().call_later(self._reply_timeout, self._overdue, conn, last)

    def _overdue(self, conn: AbstractConnection, fut: asyncio.Future[Any]) -> None:
        """The socket timeout passed before the reply to `fut`'s call: the connection failed."""
        if not fut.done():
            self._broken(conn, RedisTimeoutError("Timeout reading from Redis (script channel)"))

    def _write_done(self, conn: AbstractConnection, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._broken(conn, cast(BaseException, task.exception()))

    async def open(self) -> None:
        """Open the connection now, rather than on the first call; raises if it cannot."""
        if self._conn is None:
            self._connect_soon()
        if self._connecting is not None:
            await asyncio.shield(self._connecting)
        if self._conn is None:
            raise self._connect_error or RedisConnectionError("script channel not connected")

    def _connect_soon(self) -> None:
        if self._connecting is None:
            self._connecting = self._keep(asyncio.get_running_loop().create_task(self._connect()))

    async def _connect(self) -> None:
        pool = self.redis.connection_pool
        # Replies are read as they come, by one task that waits for them even while no
        # call is out (so a dropped connection is noticed at once, not by the next
        # call): the socket timeout is applied per call instead (`_overdue`).
        # Named, so that `CLIENT LIST` tells it from the pool's connections.
        kwargs = pool.connection_kwargs
        name = f"{kwargs.get('client_name') or 'empq'}:scripts"
        conn = pool.connection_class(**{**kwargs, "socket_timeout": None, "client_name": name})
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
        except Exception as exc:  # noqa: BLE001 - Redis unreachable: the waiting calls fail
            self._connect_error = exc
            batch, self._queued = self._queued, []
            self._fail(batch, exc)
            return
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)
            raise
        finally:
            self._connecting = None
        if self._closed:
            await conn.disconnect()
            return
        self._conn, self._connect_error = conn, None
        self._reader = self._keep(asyncio.get_running_loop().create_task(self._read(conn)))
        self.flush()

    async def _read(self, conn: AbstractConnection) -> None:
        """Match each reply to the oldest written call, until the connection fails."""
        while True:
            try:
                reply: Any = await conn.read_response()
            except ResponseError as exc:  # the script's own error: this call's reply
                reply = exc
            except BaseException as exc:
                self._broken(conn, exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            if not self._written:
                self._broken(conn, RedisConnectionError("a reply to no call: out of step"))
                return
            call = self._written.popleft()
            if isinstance(reply, NoScriptError) and not call.by_source:
                # Redis restarted or its scripts were flushed: send the source this time.
                call.by_source = True
                self._queued.append(call)
                self._flush_soon()
            else:
                _settle(call.fut, reply)

    def _broken(self, conn: AbstractConnection, exc: BaseException) -> None:
        """`conn` failed: every call written on it failed with it."""
        if self._conn is not conn:
            return
        self._conn = None
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
        self._reader = None
        failed, self._written = list(self._written), deque()
        error = exc if isinstance(exc, Exception) else RedisConnectionError(str(exc) or "closed")
        self._fail(failed, error)
        if not self._closed:
            self._keep(asyncio.get_running_loop().create_task(conn.disconnect(nowait=True)))
            if self._queued:
                self._connect_soon()

    @staticmethod
    def _fail(calls: Sequence[_Call], exc: BaseException) -> None:
        for call in calls:
            _settle(call.fut, exc)

    def _keep(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Own a background task until it is done (a cancelled caller never cuts it short)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Fail what is still unanswered and close the connection."""
        self._closed = True
        self.flush()
        conn = self._conn
        if conn is not None:
            self._broken(conn, RedisConnectionError("script channel closed"))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()


def _pack(conn: AbstractConnection, command: tuple[Any, ...]) -> bytes:
    """One command in the Redis protocol: hiredis's packer (C), else redis-py's."""
    if hiredis is not None:
        return cast(bytes, hiredis.pack_command(command))
    return b"".join(conn.pack_commands([command]))


def _settle(fut: asyncio.Future[Any], reply: Any) -> None:
    if fut.done():
        return
    if isinstance(reply, BaseException):
        fut.set_exception(reply)
    else:
        fut.set_result(reply)


class BatchedScript:
    """One operation's script; awaiting a call gives its reply."""

    def __init__(self, script: AsyncScript, channel: ScriptChannel | None) -> None:
        self.script = script
        self._channel = channel
        self._running: set[asyncio.Future[Any]] = set()

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        return await self.queue(keys, args)

    def queue(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Awaitable[Any]:
        """Queue the call now (calls queued in one turn run in this order); await the reply."""
        if self._channel is None:
            # Started now, so calls run in the order they were queued; kept until done.
            task = asyncio.ensure_future(self.script(keys=keys, args=args))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            return task
        return cast(Awaitable[Any], self._channel.run(self.script, keys, args))


@dataclass(frozen=True, slots=True)
class Scripts:
    """One registered script per operation."""

    submit: BatchedScript
    peek: BatchedScript
    claim: BatchedScript
    accept: BatchedScript
    progress: BatchedScript
    complete: BatchedScript
    fail: BatchedScript
    requeue: BatchedScript
    cancel: BatchedScript
    retry: BatchedScript
    promote: BatchedScript
    cleanup: BatchedScript
    gc_signature: BatchedScript
    channel: ScriptChannel | None

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        """Register every script with this client (no round trip until first use)."""
        channel = None if isinstance(redis, RedisCluster) else ScriptChannel(redis)
        scripts = {
            name: BatchedScript(redis.register_script(source(name)), channel) for name in NAMES
        }
        return cls(**scripts, channel=channel)

    async def open(self) -> None:
        """Open the scripts' own connection now (a Redis Cluster client has none)."""
        if self.channel is not None:
            await self.channel.open()

    def flush(self) -> None:
        """Write the calls queued so far now rather than at the end of this turn."""
        if self.channel is not None:
            self.channel.flush()

    async def close(self) -> None:
        """Close the scripts' own connection (calls still unanswered fail)."""
        if self.channel is not None:
            await self.channel.close()
