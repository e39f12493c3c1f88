"""One WebSocket peer of the hub, and the set of them.

A message is written to the socket at once, in the call that sends it, when nothing
is waiting ahead of it: dispatch is a chain of messages between processes, and a
message that waited for a writer task's turn would wait behind whatever else the
loop has to do (building a REST reply, packing a Redis pipeline), a few hundred
microseconds per hop. When the socket cannot take more (the peer reads slowly and
the transport has paused writing), messages wait in a bounded queue drained by the
connection's writer task, in order, so a slow reader never blocks the event fan-out
or another socket. Policy when a socket falls behind (`max_queue` messages or
`max_bytes` of text waiting, or a send stuck for `stall_seconds` with more waiting
behind it): what waits is dropped, the peer is told `server_disconnect`, and the
socket is closed with code 1013 and a reason saying how far behind it was. A peer
that never reads again costs the hub no more than the one message stuck in its
socket. A monitor then reconnects and catches up from the last event id it saw
(`subscribe_job_notifications` with `since`), which is better than silently
missing events that were dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketState

from empq.credentials import OPEN_ACCESS, ApiKey
from empq.eager import start_eagerly
from empq.protocol import NotificationFilters, OutMessage, out

if TYPE_CHECKING:
    from empq.hub.registry import LocalWorker

log = logging.getLogger("empq.hub.sockets.ws")

#: How far behind a socket may fall before it is closed: messages, text, and seconds
#: one send may stay stuck while others wait behind it.
DEFAULT_MAX_QUEUE = 10_000
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_STALL_SECONDS = 30.0
#: Close code for a slow consumer ("try again later").
SLOW_CONSUMER_CODE = 1013


@dataclass(slots=True)
class Subscriptions:
    """What a client or monitor has asked to hear about."""

    job_ids: set[str] = field(default_factory=set)
    notifications: NotificationFilters | None = None
    notification_id: str | None = None
    worker_updates: dict[str, Any] | None = None
    stats_interval: float | None = None
    stats_due: float = 0.0

    @property
    def any(self) -> bool:
        return bool(
            self.job_ids
            or self.notifications is not None
            or self.worker_updates is not None
            or self.stats_interval is not None
        )


class Connection:
    """A WebSocket peer: worker, job client or monitor."""

    def __init__(
        self,
        ws: WebSocket,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
    ) -> None:
        self.ws = ws
        self.id = uuid.uuid4().hex
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=max_queue)
        self.max_bytes = max_bytes
        self.stall_seconds = stall_seconds
        #: Characters of the messages waiting in the queue.
        self.queued_bytes = 0
        #: When the send in progress started (None: none is).
        self._sending_since: float | None = None
        self.closing = False
        self._close_code = 1000
        self._close_reason = ""
        #: It presented an API key (or none are configured): client messages are allowed.
        self.api_key_ok = False
        #: The key it presented (OPEN_ACCESS when none are configured): what it may see.
        self.api_key: ApiKey = OPEN_ACCESS
        self.client_type: str | None = None
        self.client_id: str | None = None
        self.worker: LocalWorker | None = None
        self.subs = Subscriptions()
        self.on_overflow: list[Any] = []
        #: A send that could not finish at once: what is sent next queues behind it.
        self._busy: asyncio.Task[None] | None = None
        #: The writer task is sending a queued message.
        self._writing = False

    def _sent(self, task: asyncio.Task[None]) -> None:
        if self._busy is task:
            self._busy = None
            self._sending_since = None
        if not task.cancelled() and task.exception() is not None:
            log.debug("connection %s: send failed: %s", self.id, task.exception())
            self.close()

    def send(self, message: OutMessage | str) -> None:
        """Send a message to this peer now, or queue it behind those waiting; never blocks."""
        if self.closing:
            return
        text = message if isinstance(message, str) else message.dump()
        if self._busy is None and not self._writing and self._queue.empty():
            try:
                self._busy = start_eagerly(self.ws.send_text(text))
            except Exception as exc:  # noqa: BLE001 - the socket is gone; the reader sees it
                log.debug("connection %s: send failed: %s", self.id, exc)
                self.close()
                return
            if self._busy is not None:
                self._sending_since = time.monotonic()
                self._busy.add_done_callback(self._sent)
            return
        since = self._sending_since
        stalled = since is not None and time.monotonic() - since > self.stall_seconds
        if self._queue.full() or self.queued_bytes + len(text) > self.max_bytes or stalled:
            self._overflow(stalled)
            return
        self._queue.put_nowait(text)
        self.queued_bytes += len(text)

    def _overflow(self, stalled: bool) -> None:
        for callback in self.on_overflow:
            callback(self)
        waited = f", a send stuck {self.stall_seconds:g} s" if stalled else ""
        self.kick(
            f"slow consumer: {self._queue.qsize()} messages / {self.queued_bytes} bytes "
            f"unsent{waited}"
        )

    def kick(self, reason: str) -> None:
        """Tell the peer to go away and close once what is queued so far is dropped."""
        if self.closing:
            return
        self.closing = True
        self._close_code = SLOW_CONSUMER_CODE
        self._close_reason = reason[:120]  # a close frame's reason holds 123 bytes
        log.warning("connection %s closed: %s", self.id, reason, extra={"connection": self.id})
        while not self._queue.empty():
            self._queue.get_nowait()
        self.queued_bytes = 0
        self._queue.put_nowait(out("server_disconnect", reason=reason, reconnect_after=1).dump())
        self._queue.put_nowait(None)

    def close(self) -> None:
        """Stop the writer after what is already queued has been sent."""
        if not self.closing:
            self.closing = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)

    async def writer(self) -> None:
        """Send queued messages until closed; then close the socket."""
        while True:
            text = await self._queue.get()
            if self._busy is not None:
                await asyncio.wait([self._busy])
            if text is None:
                break
            self.queued_bytes = max(0, self.queued_bytes - len(text))
            self._writing = True
            self._sending_since = time.monotonic()
            try:
                await self.ws.send_text(text)
            finally:
                self._writing = False
                self._sending_since = None
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError):
                await self.ws.close(code=self._close_code, reason=self._close_reason)


class Connections:
    """Every open connection of this hub."""

    def __init__(self) -> None:
        self.all: dict[str, Connection] = {}
        # Every event is routed to the subscribers; with a thousand idle workers
        # connected, scanning all sockets per event would dominate.
        self._subscribers: list[Connection] | None = None

    def add(self, conn: Connection) -> None:
        self.all[conn.id] = conn
        self._subscribers = None

    def remove(self, conn: Connection) -> None:
        self.all.pop(conn.id, None)
        self._subscribers = None

    def changed(self) -> None:
        """A connection's subscriptions changed."""
        self._subscribers = None

    def subscribers(self) -> list[Connection]:
        """Connections with at least one subscription."""
        if self._subscribers is None:
            self._subscribers = [c for c in self.all.values() if c.subs.any]
        return self._subscribers

    def broadcast(self, message: OutMessage) -> None:
        """Send to every connection (used for shutdown notices)."""
        text = message.dump()
        for conn in list(self.all.values()):
            conn.send(text)
