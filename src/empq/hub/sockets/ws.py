"""The WebSocket endpoint (`/ws` on the REST port and `/` on the WS port).

Every frame is parsed with `protocol.parse_inbound`; a bad frame gets an `error`
(or `unknown` for an unknown type) and the connection stays open.

A connection's messages are handled concurrently (up to `IN_FLIGHT` at once), so one
worker's claims, accepts and completes overlap their Redis round trips instead of
queueing behind each other. Order is kept where it matters: messages about the same
job run in arrival order (a worker's accept always lands before its complete), and
so do all messages without a job (claims, heartbeats, submits: a claim never races
another claim for the worker's free slots). A claim also waits for every message
before it, so it sees the slots its worker's completes just freed. `register_*` and
`disconnect` wait for everything before them, and everything after waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError
from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect

from empq import errors
from empq.credentials import OPEN_ACCESS, find_api_key
from empq.hub.auth import bearer
from empq.hub.connections import Connection
from empq.hub.sockets import client_handlers as clients
from empq.hub.sockets import worker_handlers as workers
from empq.hub.sockets.rights import refusal_for, validation_reply
from empq.protocol import (
    InboundMessage,
    ProtocolError,
    UnknownMessageType,
    error_message,
    out,
    parse_inbound,
)

if TYPE_CHECKING:
    from empq.hub.runtime import Hub

log = logging.getLogger("empq.hub.sockets.ws")

Handler = Callable[["Hub", Connection, Any], Awaitable[None]]


async def _ping(hub: Hub, conn: Connection, msg: Any) -> None:
    conn.send(out("pong", worker_id=getattr(msg, "worker_id", None)))


HANDLERS: dict[str, Handler] = {
    "register_worker": workers.register_worker,
    "claim_job": workers.claim_job,
    "job_accepted_by_worker": workers.job_accepted,
    "update_job_progress": workers.update_progress,
    "complete_job": workers.complete_job,
    "fail_job": workers.fail_job,
    "release_job": workers.release_job,
    "worker_heartbeat": workers.heartbeat,
    "worker_status": workers.worker_status,
    "update_capabilities": workers.update_capabilities,
    "disconnect": workers.disconnect,
    "register_client": clients.register_client,
    "submit_job": clients.submit_job,
    "request_job_status": clients.request_job_status,
    "cancel_job": clients.cancel_job,
    "subscribe_job": clients.subscribe_job,
    "unsubscribe_job": clients.subscribe_job,
    "subscribe_job_notifications": clients.subscribe_notifications,
    "subscribe_stats": clients.subscribe_stats,
    "request_stats": clients.request_stats,
    "subscribe_worker_updates": clients.subscribe_worker_updates,
    "ping": _ping,
}


def server_version() -> str:
    """The installed package version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("emp-job-queue")
    except PackageNotFoundError:
        return "0+unknown"


def _refusal(exc: Exception, msg_id: str | None, job_id: str | None) -> tuple[str, Any]:
    """The `error` text and code for a handler failure."""
    extra: dict[str, Any] = {}
    if msg_id is not None:
        extra["request_id"] = msg_id
    if job_id is not None:
        extra["job_id"] = job_id
    if isinstance(exc, ProtocolError):
        return exc.code, error_message(exc.code, exc.message, exc.details, **extra)
    if isinstance(exc, errors.EmpqError):
        return exc.code, error_message(exc.code, exc.message, exc.details, **extra)
    return "INTERNAL_ERROR", error_message("INTERNAL_ERROR", "internal error", None, **extra)


#: Messages of one connection handled at once; further frames wait in the socket.
IN_FLIGHT = 32
#: Messages that run after everything received before them, and before anything after.
BARRIERS = frozenset({"register_worker", "register_client", "disconnect"})
#: Messages that run after everything received before them (a claim sees the slots
#: freed by the completes sent ahead of it), without holding back what follows.
AFTER_ALL = frozenset({"claim_job"})


def parse_frame(hub: Hub, conn: Connection, raw: str | bytes) -> InboundMessage | None:
    """The message in one frame, or None after replying with what is wrong with it."""
    if len(raw) > hub.settings.max_message_bytes:
        hub.metrics.message_errors.labels("MESSAGE_TOO_LARGE").inc()
        conn.send(
            error_message(
                "MESSAGE_TOO_LARGE",
                f"message of {len(raw)} bytes exceeds the limit of "
                f"{hub.settings.max_message_bytes} bytes; dropped",
                {"size": len(raw), "limit": hub.settings.max_message_bytes},
            )
        )
        return None
    try:
        return parse_inbound(raw)
    except UnknownMessageType as exc:
        hub.metrics.message_errors.labels(exc.code).inc()
        conn.send(
            out(
                "unknown",
                error=exc.message,
                error_code=exc.code,
                received_type=exc.message_type,
            )
        )
    except ProtocolError as exc:
        hub.metrics.message_errors.labels(exc.code).inc()
        conn.send(error_message(exc.code, exc.message, exc.details))
    return None


async def handle_message(hub: Hub, conn: Connection, msg: InboundMessage) -> None:
    """Act on one message; every failure becomes a reply, never a close."""
    hub.metrics.messages.labels(msg.type).inc()
    try:
        refused = refusal_for(hub, conn, msg.type)
        if refused is not None:
            raise refused
        await HANDLERS[msg.type](hub, conn, msg)
    except (ProtocolError, errors.EmpqError) as exc:
        code, reply = _refusal(exc, msg.id, getattr(msg, "job_id", None))
        hub.metrics.message_errors.labels(code).inc()
        conn.send(reply)
    except PydanticValidationError as exc:
        # A value checked again past the edge (e.g. a submission rebuilt for REST rules).
        hub.metrics.message_errors.labels("VALIDATION_ERROR").inc()
        conn.send(validation_reply(exc, msg))
    except (RedisError, OSError) as exc:
        # Redis's own text names scripts and internals; it stays in the hub's log.
        log.warning("redis error handling %s: %s", msg.type, exc)
        hub.metrics.message_errors.labels("UNAVAILABLE").inc()
        # The job and message named, so a worker knows what to send again.
        job = getattr(msg, "job_id", None)
        extra: dict[str, Any] = {"message_type": msg.type}
        if isinstance(job, str):
            extra["job_id"] = job
        conn.send(
            error_message(
                "UNAVAILABLE",
                "queue storage unavailable; try again",
                None,
                request_id=msg.id,
                **extra,
            )
        )
    except Exception as exc:
        log.exception("handling %s failed", msg.type)
        code, reply = _refusal(exc, msg.id, getattr(msg, "job_id", None))
        hub.metrics.message_errors.labels(code).inc()
        conn.send(reply)


async def handle_text(hub: Hub, conn: Connection, raw: str | bytes) -> None:
    """Parse and act on one frame."""
    msg = parse_frame(hub, conn, raw)
    if msg is not None:
        await handle_message(hub, conn, msg)


class _Lanes:
    """Runs a connection's messages as tasks, ordered per job and per barrier."""

    def __init__(self, hub: Hub, conn: Connection, tg: asyncio.TaskGroup) -> None:
        self.hub = hub
        self.conn = conn
        self.tg = tg
        self.slots = asyncio.Semaphore(IN_FLIGHT)
        self.tails: dict[str, asyncio.Task[None]] = {}  # lane -> its newest task
        self.barrier: asyncio.Task[None] | None = None

    async def submit(self, msg: InboundMessage) -> None:
        await self.slots.acquire()
        if msg.type in BARRIERS or msg.type in AFTER_ALL:
            before = [t for t in self.tails.values() if not t.done()]
            lane = ""
        else:
            job_id = getattr(msg, "job_id", None)
            lane = job_id if isinstance(job_id, str) else ""
            before = [t for t in (self.tails.get(lane), self.barrier) if t and not t.done()]
        task = self.tg.create_task(self._run(before, msg))
        self.tails[lane] = task
        if msg.type in BARRIERS:
            self.barrier = task
        task.add_done_callback(functools.partial(self._done, lane))

    def _done(self, lane: str, task: asyncio.Task[None]) -> None:
        if self.tails.get(lane) is task:
            del self.tails[lane]

    async def _run(self, before: list[asyncio.Task[None]], msg: InboundMessage) -> None:
        try:
            if before:
                await asyncio.wait(before)
            await handle_message(self.hub, self.conn, msg)
        finally:
            self.slots.release()


async def _reader(hub: Hub, conn: Connection, ws: WebSocket) -> bool:
    """Handle frames until the peer goes (True) or the hub closes the socket (False).

    Messages still being handled when the peer goes are finished first.
    """
    async with asyncio.TaskGroup() as tg:
        lanes = _Lanes(hub, conn, tg)
        while not conn.closing:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                return True
            raw = frame.get("text")
            if raw is None:
                raw = frame.get("bytes") or b""
            msg = parse_frame(hub, conn, raw)
            if msg is not None:
                await lanes.submit(msg)
    return False


async def serve_socket(hub: Hub, ws: WebSocket) -> None:
    """Run one connection to its end."""
    await ws.accept()
    s = hub.settings
    conn = Connection(
        ws,
        max_queue=s.ws_max_queue,
        max_bytes=s.ws_max_queue_bytes,
        stall_seconds=s.ws_stall_seconds,
    )
    token = bearer(ws.headers) or ws.query_params.get("token") or ws.query_params.get("api_key")
    if hub.settings.api_keys:
        key = find_api_key(token, hub.settings.api_key_entries)
        conn.api_key_ok = key is not None
        conn.api_key = key or OPEN_ACCESS  # without a key, client messages are refused
    else:
        conn.api_key_ok = True
    conn.on_overflow.append(lambda _c: hub.metrics.slow_consumers.inc())
    hub.connections.add(conn)
    hub.metrics.connections.inc()
    conn.send(
        out(
            "connection_established",
            message=f"connected to empq hub {hub.hub_id}",
            server_version=server_version(),
            connection_id=conn.id,
            hub_id=hub.hub_id,
            hub_http_url=hub.http_url,
        )
    )
    try:
        async with asyncio.TaskGroup() as tg:
            writer = tg.create_task(conn.writer())
            peer_gone = True
            try:
                peer_gone = await _reader(hub, conn, ws)
            finally:
                conn.close()
                if peer_gone and not writer.done():
                    writer.cancel()
    except* (WebSocketDisconnect, RuntimeError, OSError) as group:
        log.debug("connection %s ended: %s", conn.id, group.exceptions)
    finally:
        hub.connections.remove(conn)
        hub.metrics.connections.dec()
        lw = conn.worker
        if lw is not None:
            with contextlib.suppress(RedisError, OSError):
                await hub.registry.detach(lw)
                await hub.broker.publish(
                    "worker_status",
                    {"worker_id": lw.worker_id, "status": lw.info.status, "connected": False},
                )


__all__ = ["HANDLERS", "handle_text", "serve_socket"]
