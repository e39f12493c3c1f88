"""The Lua scripts of `empq/lua/`, each registered once and run by SHA.

Script calls made in the same event-loop turn (sixteen workers completing at once,
a worker's batch of reports) go to Redis together as one pipeline: one write and one
round trip for all of them instead of one each. Each call still runs as its own
script, atomically, and gets its own reply or error. On NOSCRIPT (after a Redis
restart or SCRIPT FLUSH) the call is run again through redis-py's `Script`, which
loads the source and retries. A Redis Cluster client runs each call on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

_Call = tuple[AsyncScript, Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]

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


class ScriptBatch:
    """Collects the script calls of one event-loop turn and sends them as one pipeline."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pending: list[_Call] = []
        self._flushes: set[asyncio.Task[None]] = set()

    def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Queue one call; the returned future resolves to its reply."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, fut))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        # Owned here until done, so a caller that is cancelled never cuts a batch short.
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            if len(batch) == 1:
                script, keys, args, fut = batch[0]
                _settle(fut, await _reply_of(script, keys, args))
                return
            pipe = self.redis.pipeline(transaction=False)
            for script, keys, args, _ in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            try:
                replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # noqa: BLE001 - the connection failed: every call did
                for *_, fut in batch:
                    _settle(fut, exc)
                return
            for (script, keys, args, fut), reply in zip(batch, replies, strict=True):
                _settle(
                    fut,
                    await _reply_of(script, keys, args)
                    if isinstance(reply, NoScriptError)
                    else reply,
                )
        finally:
            for *_, fut in batch:
                if not fut.done():
                    fut.cancel()


async def _reply_of(script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """The reply of one call, or the exception it raised."""
    try:
        return await script(keys=keys, args=args)
    except Exception as exc:  # noqa: BLE001 - handed to the caller, who raises it
        return exc


def _settle(fut: asyncio.Future[Any], reply: Any) -> None:
    if fut.done():
        return
    if isinstance(reply, BaseException):
        fut.set_exception(reply)
    else:
        fut.set_result(reply)


class BatchedScript:
    """One operation's script; awaiting a call gives its reply."""

    def __init__(self, script: AsyncScript, batch: ScriptBatch | None) -> None:
        self.script = script
        self._batch = batch
        self._running: set[asyncio.Future[Any]] = set()

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        return await self.queue(keys, args)

    def queue(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Awaitable[Any]:
        """Queue the call now (calls queued in one turn run in this order); await the reply."""
        if self._batch is None:
            # Started now, so calls run in the order they were queued; kept until done.
            task = asyncio.ensure_future(self.script(keys=keys, args=args))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            return task
        return cast(Awaitable[Any], self._batch.run(self.script, keys, args))


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

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        """Register every script with this client (no round trip until first use)."""
        batch = None if isinstance(redis, RedisCluster) else ScriptBatch(redis)
        return cls(
            **{name: BatchedScript(redis.register_script(source(name)), batch) for name in NAMES}
        )
