"""The event stream: every job change is appended by its script; other events by `publish`."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from redis.asyncio.cluster import RedisCluster

from empq.broker.base import (
    BrokerBase,
    Event,
)
from empq.redis_socket import RedisSocket, pack, settle

#: How long a reader of events lets script replies that came with them go first.
SETTLE_SECONDS = 0.005
#: An event read whose reply is this much later than its BLOCK time has failed.
READ_MARGIN_SECONDS = 10.0


class EventsMixin(BrokerBase):
    """Publish and read events."""

    async def publish(self, event_type: str, data: dict[str, Any]) -> str:
        """Append a non-job event (worker_*, system_alert) to the event stream."""
        eid = await self._r.xadd(
            self.keys.events,
            {"type": event_type, "data": json.dumps(data, separators=(",", ":"))},
            maxlen=self.settings.event_stream_max,
            approximate=True,
        )
        return cast(bytes, eid).decode()

    @staticmethod
    def parse_entry(eid: bytes | str, fields: dict[bytes, bytes]) -> list[Event]:
        """The events of one raw stream entry (as XREAD or XREADGROUP return it).

        An entry holds one event, or several of one type (a claim of several jobs
        writes their `job_update`s as one JSON array); they share the entry's id.
        """
        event_id = eid.decode() if isinstance(eid, bytes) else eid
        event_type = fields[b"type"].decode()
        data = json.loads(fields[b"data"])
        if isinstance(data, list):
            return [Event(event_id, event_type, d) for d in data if isinstance(d, dict)]
        return [Event(event_id, event_type, data if isinstance(data, dict) else {})]

    def _events(self, entries: list[Any]) -> list[Event]:
        return [ev for eid, fields in entries for ev in self.parse_entry(eid, fields)]

    async def read_events(
        self, last_id: str = "$", block_ms: int = 1000, count: int = 500
    ) -> list[Event]:
        """Events after `last_id`, waiting up to `block_ms` for the first one."""
        reply = await self._r.xread({self.keys.events: last_id}, count=count, block=block_ms)
        if not reply:
            return []
        return self._events(reply[0][1])

    def event_reader(self) -> EventReader:
        """A reader of the event stream on a connection of its own (see `EventReader`)."""
        return EventReader(self)

    async def events_since(self, event_id: str, count: int = 1000) -> list[Event]:
        """Up to `count` events after `event_id`, for a subscriber catching up."""
        entries = await self._r.xrange(self.keys.events, f"({event_id}", "+", count=count)
        return self._events(entries)

    async def last_event_id(self) -> str:
        """The id of the newest event ("0-0" when there is none)."""
        entries = await self._r.xrevrange(self.keys.events, "+", "-", count=1)
        return entries[0][0].decode() if entries else "0-0"


class EventReader:
    """Blocking reads of the event stream (XREAD BLOCK) on a connection of their own.

    The hub's event pump waits in XREAD nearly all the time. When a script appends an
    event, Redis sends the pump its reply in the same moment as the script's caller
    its own; read through redis-py, the pump's reply took a hundred or more
    microseconds of the one event loop before the script's caller (a dispatch waiting
    to answer a worker's claim) was resumed. Here the connection's socket is read
    directly (`RedisSocket`), the reply is handed over one loop turn later, so that
    the callers of script replies that arrived with it are woken first, and `read`
    then waits for the script calls in flight to be settled
    (`ScriptChannel.settled`, at most `SETTLE_SECONDS`) before it decodes the events.

    A Redis Cluster client has no script channel; the reader uses its `xread` then.
    """

    def __init__(self, broker: EventsMixin) -> None:
        self._broker = broker
        self._sock: RedisSocket | None = None
        self._pending: asyncio.Future[Any] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def read(self, last_id: str, block_ms: int = 1000, count: int = 500) -> list[Event]:
        """Events after `last_id`, waiting up to `block_ms` for the first one.

        A reply later than `block_ms` + `READ_MARGIN_SECONDS` means the connection is
        dead: the read is cut short with TimeoutError. A read that fails or is
        cancelled closes its connection (a late reply would otherwise be taken for the
        next read's), and the next read opens a new one.
        """
        broker = self._broker
        if isinstance(broker.redis, RedisCluster):
            return await broker.read_events(last_id, block_ms, count)
        sock = self._sock or await self._connect()
        fut = self._pending = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(block_ms / 1000 + READ_MARGIN_SECONDS):
                sock.write(
                    pack(
                        "XREAD",
                        "COUNT",
                        count,
                        "BLOCK",
                        block_ms,
                        "STREAMS",
                        broker.keys.events,
                        last_id,
                    )
                )
                reply = await fut
        except BaseException:
            self._drop()
            raise
        finally:
            self._pending = None
        await broker.scripts.settled(SETTLE_SECONDS)
        if not reply:
            return []
        streams = reply.values() if isinstance(reply, dict) else (r[1] for r in reply)
        return [
            ev
            for entries in streams
            for eid, fields in entries
            for ev in broker.parse_entry(eid, _fields(fields))
        ]

    async def _connect(self) -> RedisSocket:
        self._sock = await RedisSocket.open(self._broker.redis, "events", self._replied, self._lost)
        return self._sock

    def _replied(self, sock: RedisSocket, reply: Any) -> None:
        if self._sock is not sock:
            return
        fut = self._pending
        if fut is None or fut.done():  # a reply to no read: out of step
            self._drop()
            return
        # A turn later: the callers of script replies read in this same turn go first.
        asyncio.get_running_loop().call_soon(settle, fut, reply)

    def _lost(self, sock: RedisSocket, exc: Exception) -> None:
        if self._sock is not sock:  # an earlier connection, already dropped
            return
        pending = self._pending
        self._drop()
        if pending is not None:
            settle(pending, exc)

    def _drop(self) -> None:
        """Close the connection; the next read opens a new one."""
        sock, self._sock = self._sock, None
        if sock is not None:
            task = asyncio.get_running_loop().create_task(sock.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            await sock.aclose()
        await asyncio.gather(*self._closing, return_exceptions=True)


def _fields(raw: Any) -> dict[bytes, bytes]:
    """A stream entry's fields: a flat [k, v, ...] list (RESP2) or a map (RESP3)."""
    if isinstance(raw, dict):
        return raw
    it = iter(raw)
    return dict(zip(it, it, strict=True))
