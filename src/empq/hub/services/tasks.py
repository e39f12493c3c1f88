"""The hub's background work, each task under a leader lease so several hubs can run.

| task        | lease      | what it does                                                      |
|-------------|------------|-------------------------------------------------------------------|
| heartbeats  | yes        | a worker silent past `heartbeat_timeout` loses its jobs           |
| claims      | yes        | an assignment not accepted within `claim_timeout` is requeued     |
| timeouts    | yes        | a job past its `timeout_minutes` is marked `timeout`              |
| retries     | yes        | failed jobs whose back-off has passed are queued again            |
| cleanup     | yes        | finished jobs past retention and long-offline workers are deleted |
| alerts      | yes        | `system_alert` for a deep queue or a job no worker can run        |
| registry    | no (local) | refresh this hub's cache of every worker                          |
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from empq.hub.departures import worker_gone
from empq.matching import static_reasons

if TYPE_CHECKING:
    from empq.broker import Broker
    from empq.config import HubSettings
    from empq.hub.registry import Registry


class Hub(Protocol):
    """What the background tasks use of the hub that runs them."""

    settings: HubSettings
    broker: Broker
    registry: Registry


log = logging.getLogger("empq.hub.services.tasks")

#: The retries task looks at the delayed set at least this often (seconds); it also
#: sleeps until the next retry is due and wakes on every retry scheduled.
RETRIES_POLL = 1.0
#: Offline workers are forgotten after this long.
WORKER_RETENTION = timedelta(hours=24)


async def check_heartbeats(hub: Hub) -> None:
    """Requeue the jobs of every worker that has not heartbeated in time."""
    cutoff = int((time.time() - hub.settings.heartbeat_timeout) * 1000)
    for worker_id in await hub.registry.silent_since(cutoff):
        local = hub.registry.local.get(worker_id)
        await worker_gone(hub.broker, hub.registry, worker_id, "heartbeat timeout")
        if local is not None:
            # Its socket may still be open (a loop blocked past the timeout, SIGSTOP):
            # tell it and close, so it registers afresh instead of heartbeating on a
            # registration that no longer counts.
            local.conn.worker = None
            local.conn.kick("dropped for silence (heartbeat timeout); register again")


async def sweep_claims(hub: Hub) -> None:
    requeued = await hub.broker.sweep_claims()
    if requeued:
        log.info("requeued %d unaccepted assignments: %s", len(requeued), requeued)


async def sweep_timeouts(hub: Hub) -> None:
    timed_out = await hub.broker.sweep_timeouts()
    if timed_out:
        log.info("%d jobs timed out: %s", len(timed_out), timed_out)


async def promote_retries(hub: Hub) -> float:
    """Queue the retries that are due; seconds until the next one is (the task's sleep).

    The task also wakes when the event stream shows a failure that will retry (the
    event pump sets `hub.wakeups["retries"]`), so a new retry due sooner than the
    current sleep is not left waiting for it.
    """
    broker = hub.broker
    due_at = await broker.next_retry_at()
    if due_at is not None and due_at <= broker.clock():
        await broker.promote_due()
        due_at = await broker.next_retry_at()
    return RETRIES_POLL if due_at is None else (due_at - broker.clock()) / 1000


async def cleanup(hub: Hub) -> None:
    removed = await hub.broker.cleanup()
    forgotten = await hub.registry.forget_offline(datetime.now(UTC) - WORKER_RETENTION)
    if removed or forgotten:
        log.info("cleanup: %d old jobs, %d offline workers removed", removed, forgotten)


class Alerts:
    """`system_alert`s, raised once per condition until it clears."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.active: set[str] = set()

    async def _raise(
        self, key: str, severity: str, category: str, message: str, details: dict[str, Any]
    ) -> None:
        if key in self.active:
            return
        self.active.add(key)
        await self.hub.broker.publish(
            "system_alert",
            {"severity": severity, "category": category, "message": message, "details": details},
        )

    async def check(self) -> None:
        """Look for a deep queue and for queued jobs no connected worker can run."""
        hub = self.hub
        stats = await hub.broker.stats()
        depth = int(stats.get("jobs_by_status", {}).get("queued", 0))
        limit = hub.settings.alert_queue_depth
        seen: set[str] = set()
        if depth >= limit:
            seen.add("queue_depth")
            await self._raise(
                "queue_depth",
                "warning",
                "queue_depth",
                f"{depth} jobs queued (alert at {limit})",
                {"queue_depth": depth, "threshold": limit},
            )
        workers = [w for w in await hub.registry.all() if w.connected and w.status != "offline"]
        for sig, (spec, count) in (await hub.broker.queued_specs()).items():
            if any(not static_reasons(w.capabilities, spec) for w in workers):
                continue
            key = f"unrunnable:{sig}"
            seen.add(key)
            await self._raise(
                key,
                "warning",
                "unrunnable_job",
                f"{count} queued job(s) of type '{spec.type}' that no connected worker can run",
                {
                    "job_type": spec.type,
                    "queued": count,
                    "signature": sig,
                    "service_type": spec.service_type,
                    "customer_id": spec.customer_id,
                },
            )
        self.active &= seen


async def refresh_registry(hub: Hub) -> None:
    await hub.registry.all()


def schedule(hub: Hub) -> list[tuple[str, float, Any, bool]]:
    """(name, interval seconds, work, leased) for every background task.

    A leased task wakes early when `hub.wakeups` has an event of its name set.
    """
    s = hub.settings
    alerts = Alerts(hub)
    return [
        (
            "heartbeats",
            min(max(s.heartbeat_timeout / 4, 0.05), 5.0),
            lambda: check_heartbeats(hub),
            True,
        ),
        ("claims", min(max(s.claim_timeout / 4, 0.05), 1.0), lambda: sweep_claims(hub), True),
        ("timeouts", 0.5, lambda: sweep_timeouts(hub), True),
        ("retries", RETRIES_POLL, lambda: promote_retries(hub), True),
        ("cleanup", 60.0, lambda: cleanup(hub), True),
        ("alerts", min(s.stats_interval, 5.0), alerts.check, True),
        ("registry", 2.0, lambda: refresh_registry(hub), False),
    ]
