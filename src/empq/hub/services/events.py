"""The hub's one reader of the shared event stream, fanned out in memory.

Why Redis Streams rather than pub/sub: the broker appends each job event in the
same Lua script that changes the job, so events are never lost and come in the
order of the changes; a stream also keeps recent history, so a monitor that
reconnects asks for everything after the last event id it saw
(`subscribe_job_notifications` with `since`) instead of reloading a snapshot.

Each hub reads the stream once (`XREAD` from the tail) and routes every event to
its own sockets: job subscribers with their filters, worker-update and alert
subscribers, `cancel_job` to a local worker running a cancelled job, and the
dispatcher for newly queued jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from empq.hub import control
from empq.hub.connections import Connection, Connections
from empq.protocol import NotificationFilters, out
from empq.status import ACTIVE_STATUSES, JobStatus

if TYPE_CHECKING:
    from empq.broker import Broker
    from empq.hub.dispatch import Dispatcher
    from empq.hub.registry import Registry

log = logging.getLogger("empq.hub.services.events")

#: After reading events, the pump waits this long before reading again.
GATHER_SECONDS = 0.002

JOB_EVENTS = frozenset({"job_update", "job_completed", "job_failed"})
#: A job event whose previous status is one of these freed a slot of its customer.
HELD_STATUSES = frozenset({"assigned", "accepted", "in_progress"})
WORKER_EVENTS = frozenset({"worker_registered", "worker_status", "worker_disconnected"})


def event_ms(event_id: str) -> int | None:
    """The time (ms) Redis gave a stream entry, from its id."""
    head, _, _ = event_id.partition("-")
    return int(head) if head.isdigit() else None


def passes(filters: NotificationFilters, data: dict[str, Any]) -> bool:
    """Whether a job event matches a subscriber's filters."""
    if filters.customer_id is not None and data.get("customer_id") != filters.customer_id:
        return False
    if filters.job_types is not None and data.get("job_type") not in filters.job_types:
        return False
    if filters.priority_min is not None:
        prio = data.get("priority")
        if not isinstance(prio, int | float) or prio < filters.priority_min:
            return False
    return filters.status is None or data.get("status") in filters.status


def worker_passes(filters: dict[str, Any], data: dict[str, Any]) -> bool:
    """Whether a worker event matches `worker_filters` (keys: worker_ids, status)."""
    ids = filters.get("worker_ids") or filters.get("worker_id")
    if isinstance(ids, str):
        ids = [ids]
    if isinstance(ids, list) and data.get("worker_id") not in ids:
        return False
    status = filters.get("status")
    if isinstance(status, str):
        status = [status]
    return not (isinstance(status, list) and "status" in data and data["status"] not in status)


def wants_job_event(conn: Connection, data: dict[str, Any]) -> bool:
    """Whether this connection subscribed to this job event."""
    subs = conn.subs
    if data.get("job_id") in subs.job_ids:
        return True
    return subs.notifications is not None and passes(subs.notifications, data)


def event_message(event_type: str, data: dict[str, Any], event_id: str) -> str:
    """The WebSocket text for one event (`event_id` lets a monitor resume from it)."""
    return out(event_type, event_id=event_id, **data).dump()


class EventPump:
    """Reads the event stream and routes each event; runs for the hub's lifetime."""

    def __init__(
        self,
        broker: Broker,
        registry: Registry,
        connections: Connections,
        dispatcher: Dispatcher,
        *,
        heartbeat_timeout: float,
        retry_due: asyncio.Event,
        events_seen: Callable[[], None],
        slot_freed: Callable[[str | None], None] | None = None,
    ) -> None:
        self.broker = broker
        self.registry = registry
        self.connections = connections
        self.dispatcher = dispatcher
        self.heartbeat_timeout = heartbeat_timeout
        #: Set when a failed job will be retried: its back-off may end before the next poll.
        self.retry_due = retry_due
        #: Told after each read that brought events (the webhook outbox reads them later).
        self.events_seen = events_seen
        #: Told the customer of each job that left its worker (per-customer limits).
        self.slot_freed = slot_freed
        self.last_id = "$"
        self.ready = asyncio.Event()
        self.reader = broker.event_reader()

    async def run(self) -> None:
        """Read forever; survive Redis errors with a short back-off."""
        try:
            await self._run()
        finally:
            await self.reader.close()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                if self.last_id == "$":
                    self.last_id = await self.broker.last_event_id()
                self.ready.set()
                events = await self.reader.read(self.last_id, block_ms=1000, count=500)
                backoff = 0.1
            except (RedisError, OSError) as exc:
                log.warning("event stream read failed: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            # (The reader has let the callers of the scripts that wrote these go first.)
            if events:
                self.events_seen()
            for ev in events:
                self.last_id = ev.id
                try:
                    await self.route(ev.type, ev.data, ev.id)
                except (RedisError, OSError) as exc:
                    log.warning("event %s (%s) not fully routed: %s", ev.id, ev.type, exc)
                except Exception:
                    log.exception("event %s (%s) could not be routed", ev.id, ev.type)
            if events:
                # Let the next events gather: under load one read carries many, and the
                # reads stay out of the way of the claim that usually follows an event.
                await asyncio.sleep(GATHER_SECONDS)

    async def route(self, event_type: str, data: dict[str, Any], event_id: str) -> None:
        """Deliver one event to everything on this hub that wants it."""
        if event_type in JOB_EVENTS:
            self._track_jobs(data, event_id)
            if (
                self.slot_freed is not None
                and data.get("previous_status") in HELD_STATUSES
                and data.get("status") not in HELD_STATUSES
            ):
                customer = data.get("customer_id")
                self.slot_freed(customer if isinstance(customer, str) else None)
            if event_type == "job_failed" and data.get("will_retry"):
                self.retry_due.set()
            text: str | None = None
            for conn in self.connections.subscribers():
                if wants_job_event(conn, data):
                    text = text or event_message(event_type, data, event_id)
                    conn.send(text)
            if (
                event_type == "job_update"
                and data.get("status") == JobStatus.QUEUED
                and not self.dispatcher.offered_at_submit(str(data.get("job_id")))
            ):
                await self.dispatcher.on_queued(data, event_ms(event_id))
        elif event_type in WORKER_EVENTS:
            if event_type == "worker_disconnected":
                self._drop_if_declared_gone(data)
            self.registry.apply_event(event_type, data)
            self._to_worker_subscribers(event_type, data, event_id)
        elif event_type == control.SERVICE_PAUSED:
            await control.on_service_paused(self.broker, self.dispatcher.claims, data)
        elif event_type == control.WORKER_DRAIN:
            await control.on_worker_drain(self.broker, self.registry, self.dispatcher.claims, data)
        elif event_type == "system_alert":
            text = event_message(event_type, data, event_id)
            for conn in self.connections.subscribers():
                if conn.api_key.is_operator:  # alerts are about the whole fleet
                    conn.send(text)

    def _drop_if_declared_gone(self, data: dict[str, Any]) -> None:
        """Another hub's heartbeat monitor gave up on a worker connected here.

        Its jobs are back in the queue, so its registration here ends too: its next
        message gets NOT_REGISTERED and it registers afresh. A worker that has
        heartbeated since (it re-registered in the meantime) is left alone.
        """
        wid = data.get("worker_id")
        lw = self.registry.local.get(wid) if isinstance(wid, str) else None
        if lw is None or lw.info.last_heartbeat is None:
            return
        silent = datetime.now(UTC) - lw.info.last_heartbeat
        if silent.total_seconds() >= self.heartbeat_timeout:
            self.registry.drop_local(lw)
            lw.conn.worker = None

    def _to_worker_subscribers(self, event_type: str, data: dict[str, Any], event_id: str) -> None:
        text: str | None = None
        for conn in self.connections.subscribers():
            filters = conn.subs.worker_updates
            if filters is not None and worker_passes(filters, data):
                text = text or event_message(event_type, data, event_id)
                conn.send(text)

    def _track_jobs(self, data: dict[str, Any], event_id: str) -> None:
        """Keep local workers' held jobs in step; tell a worker its job was cancelled.

        An event ends a hold only if it is newer than the claim that made the hold (a
        late-read event of the job's earlier life says nothing about its holder now), and
        says the job left its holder: it is no longer active, or it is active with
        another worker (taken back and claimed elsewhere meanwhile).
        """
        job_id = data.get("job_id")
        status = data.get("status")
        if not isinstance(job_id, str):
            return
        holder = self.registry.holders.get(job_id)
        if holder is None or (
            status in ACTIVE_STATUSES and data.get("worker_id") in (None, holder.worker_id)
        ):
            return
        lw = self.registry.ended_by(job_id, event_id)
        if lw is not None and status == JobStatus.CANCELLED:
            lw.conn.send(
                out("cancel_job", job_id=job_id, reason=data.get("message") or "cancelled")
            )
