"""What the hub does with each client and monitor → hub message of CONTRACT §4."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from empq.credentials import find_api_key
from empq.errors import Forbidden
from empq.hub.connections import Connection
from empq.hub.placement import eta, eta_fields
from empq.hub.scoping import notification_filters, scoped_submission, take_rate, visible
from empq.hub.services.events import JOB_EVENTS, wants_job_event
from empq.hub.sockets.catchup import read_catch_up, replay
from empq.hub.sockets.rights import refusal_for
from empq.matching import JobSpec
from empq.models import Job
from empq.protocol import (
    CancelJob,
    ProtocolError,
    RegisterClient,
    RequestJobStatus,
    RequestStats,
    SubmitJob,
    SubscribeJob,
    SubscribeJobNotifications,
    SubscribeStats,
    SubscribeWorkerUpdates,
    out,
)
from empq.status import JobStatus

if TYPE_CHECKING:
    from empq.hub.runtime import Hub


def _ms(job: Job, field: str) -> int | None:
    value = getattr(job, field)
    return int(value.timestamp() * 1000) if value is not None else None


def require_client_auth(hub: Hub, conn: Connection) -> None:
    """Client messages need an API key when keys are set (also checked by `rights`)."""
    refused = refusal_for(hub, conn, "submit_job")
    if refused is not None:
        raise refused


def require_operator(conn: Connection) -> None:
    """Fleet-wide views (stats, workers) are for operator keys only."""
    if not conn.api_key.is_operator:
        raise Forbidden("this message needs an operator key")


async def register_client(hub: Hub, conn: Connection, msg: RegisterClient) -> None:
    if hub.settings.api_keys and not conn.api_key_ok:
        key = find_api_key(msg.api_key, hub.settings.api_key_entries)
        if key is None:
            raise ProtocolError("AUTH_FAILED", "API key not accepted")
        conn.api_key_ok = True
        conn.api_key = key
    conn.client_type = msg.client_type
    conn.client_id = msg.client_id or f"client-{conn.id[:8]}"
    conn.send(out("client_registered", client_id=conn.client_id, assigned_connection_id=conn.id))


async def submit_job(hub: Hub, conn: Connection, msg: SubmitJob) -> None:
    require_client_auth(hub, conn)
    sub = scoped_submission(conn.api_key, msg.to_submission())
    await take_rate(hub.broker, conn.api_key, 1)
    spec = JobSpec.of(sub.type, sub.customer_id, sub.requirements)
    # Counted before the submission, which may already have one of them claim it.
    notified = hub.dispatcher.capable_idle_count(spec)
    result = await hub.dispatcher.submit(sub, spec)
    hub.webhooks.remember_job_url(result.job_id, sub.webhook_url)
    conn.subs.job_ids.add(result.job_id)
    hub.connections.changed()
    reply: dict[str, Any] = {
        "job_id": result.job_id,
        "status": result.status,
        "position": result.position,
        "notified_workers": notified,
        "created": result.created,
    }
    if result.status is JobStatus.QUEUED and result.member is not None:
        reply.update(eta_fields(await eta(hub, spec, result.member, result.position)))
    warnings = await hub.warnings_for(spec)
    if warnings:
        reply["warnings"] = warnings
    conn.send(out("job_accepted", **reply))


async def request_job_status(hub: Hub, conn: Connection, msg: RequestJobStatus) -> None:
    require_client_auth(hub, conn)
    job = visible(conn.api_key, await hub.broker.get(msg.job_id))
    conn.send(
        out(
            "response_job_status",
            job_id=job.id,
            status=job.status,
            progress=job.progress,
            worker_id=job.worker_id,
            message=job.message,
            position=job.position,
            attempts=job.attempts,
            job_type=job.type,
            priority=job.priority,
            result=job.result,
            error=job.error,
            created_at=_ms(job, "created_at"),
            started_at=_ms(job, "started_at"),
            completed_at=_ms(job, "completed_at"),
        )
    )


async def cancel_job(hub: Hub, conn: Connection, msg: CancelJob) -> None:
    require_client_auth(hub, conn)
    if not conn.api_key.is_operator:
        visible(conn.api_key, await hub.broker.get(msg.job_id))
    job = await hub.broker.cancel(msg.job_id, msg.reason)
    conn.send(
        out(
            "job_cancelled",
            job_id=job.id,
            status=job.status,
            cancelled_at=_ms(job, "completed_at") or out("x").timestamp,
        )
    )


async def subscribe_job(hub: Hub, conn: Connection, msg: SubscribeJob) -> None:
    require_client_auth(hub, conn)
    subscribed = msg.type == "subscribe_job"
    if subscribed and not conn.api_key.is_operator:
        visible(conn.api_key, await hub.broker.get(msg.job_id))
    if subscribed:
        conn.subs.job_ids.add(msg.job_id)
    else:
        conn.subs.job_ids.discard(msg.job_id)
    hub.connections.changed()
    conn.send(out("job_notifications_subscribed", job_id=msg.job_id, subscribed=subscribed))


async def subscribe_notifications(
    hub: Hub, conn: Connection, msg: SubscribeJobNotifications
) -> None:
    require_client_auth(hub, conn)
    hub.connections.changed()
    if not msg.enabled:
        conn.subs.notifications = None
        conn.send(
            out(
                "job_notifications_subscribed",
                subscription_id=conn.subs.notification_id,
                enabled=False,
                filters_applied={},
            )
        )
        return
    filters = notification_filters(conn.api_key, msg.filters)
    conn.subs.notifications = filters
    conn.subs.notification_id = conn.subs.notification_id or uuid.uuid4().hex
    upto = hub.events.last_id  # what the pump read so far; later events come live
    found = None if msg.since is None else await read_catch_up(hub, msg.since, upto)
    matching = [] if found is None else [e for e in found.events if e.type in JOB_EVENTS]
    extra: dict[str, Any] = {}
    if found is not None:
        wanted = sum(1 for e in matching if wants_job_event(conn, e.data))
        extra["catch_up"] = found.summary(wanted)
    conn.send(
        out(
            "job_notifications_subscribed",
            subscription_id=conn.subs.notification_id,
            enabled=True,
            filters_applied=filters.model_dump(mode="json", exclude_none=True),
            **extra,
        )
    )
    if found is not None:
        replay(conn, found)


async def subscribe_stats(hub: Hub, conn: Connection, msg: SubscribeStats) -> None:
    require_client_auth(hub, conn)
    require_operator(conn)
    hub.connections.changed()
    if not msg.enabled:
        conn.subs.stats_interval = None
        conn.send(out("subscription_confirmed", subscription_type="stats", enabled=False))
        return
    interval = msg.interval_seconds or hub.settings.stats_interval
    conn.subs.stats_interval = interval
    conn.subs.stats_due = 0.0  # the first broadcast goes out at once
    conn.send(
        out(
            "subscription_confirmed",
            subscription_type="stats",
            update_interval=interval,
            enabled=True,
        )
    )
    hub.stats.wake()


async def request_stats(hub: Hub, conn: Connection, msg: RequestStats) -> None:
    require_client_auth(hub, conn)
    require_operator(conn)
    conn.send(out("stats_broadcast", **await hub.stats.collect()))


async def subscribe_worker_updates(hub: Hub, conn: Connection, msg: SubscribeWorkerUpdates) -> None:
    require_client_auth(hub, conn)
    require_operator(conn)
    conn.subs.worker_updates = (msg.worker_filters or {}) if msg.enabled else None
    hub.connections.changed()
    conn.send(
        out(
            "subscription_confirmed",
            subscription_type="worker_updates",
            enabled=msg.enabled,
            filters_applied=msg.worker_filters or {},
        )
    )
