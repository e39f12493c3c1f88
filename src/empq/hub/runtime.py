"""`Hub`: everything one hub process runs, owned by the app's lifespan.

It wires the broker to the registry, the connections, the event pump, the
dispatcher, webhooks, stats and the background tasks. Tasks are created in
`start` and cancelled and awaited in `stop`; nothing outlives the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from empq.config import HubSettings
from empq.hub.artifacts import ArtifactStore
from empq.hub.claims import Claims
from empq.hub.connections import Connections
from empq.hub.dispatch import Dispatcher
from empq.hub.explain import warnings
from empq.hub.leases import Leases, run_leased
from empq.hub.lifecycle import HubLifecycle
from empq.hub.metrics import HubMetrics
from empq.hub.placement import Placement
from empq.hub.registry import Registry
from empq.hub.services import tasks
from empq.hub.services.events import EventPump
from empq.hub.services.stats import StatsService
from empq.hub.services.webhooks import Webhooks
from empq.matching import JobSpec
from empq.protocol import out

if TYPE_CHECKING:
    from empq.broker import Broker

log = logging.getLogger("empq.hub")


class Hub:
    """The running state of one hub process."""

    def __init__(self, settings: HubSettings, broker: Broker) -> None:
        self.settings = settings
        self.broker = broker
        self.hub_id = uuid.uuid4().hex[:12]
        self.http_url: str | None = settings.public_url
        self.metrics = HubMetrics(settings.metrics_max_job_types, settings.metrics_max_customers)
        broker.observer = HubLifecycle(broker, self.metrics)
        self.registry = Registry(broker.redis, broker.keys, self.hub_id)
        self.connections = Connections()
        self.accepting = True
        self.claims = Claims(
            broker,
            self.registry,
            self.metrics,
            wait_max=settings.claim_wait_max,
            accepting=lambda: self.accepting,
        )
        #: Set to run a background task's next round at once (see `tasks.schedule`).
        self.wakeups = {"retries": asyncio.Event()}
        self.leases = Leases(broker.redis, broker.keys, self.hub_id)
        self.webhooks = Webhooks(settings, broker, self.metrics, self.leases)
        self.placement = Placement(self.registry)
        self.dispatcher = Dispatcher(
            broker,
            self.registry,
            self.claims,
            self.metrics,
            accepting=lambda: self.accepting,
            warm_wait=settings.warm_wait_seconds,
        )
        self.events = EventPump(
            broker,
            self.registry,
            self.connections,
            self.dispatcher,
            heartbeat_timeout=settings.heartbeat_timeout,
            retry_due=self.wakeups["retries"],
            events_seen=self.webhooks.events_seen,
            slot_freed=self._slot_freed if settings.customer_max_running else None,
        )
        self.stats = StatsService(broker, self.registry, self.connections)
        self.artifacts = ArtifactStore(settings.artifact_dir)
        self._tasks: list[asyncio.Task[Any]] = []
        self._warn_cache: dict[tuple[int, str], list[str]] = {}

    async def start(self) -> None:
        """Start the background tasks and wait until events are being read."""
        self.settings.artifact_dir.mkdir(parents=True, exist_ok=True)
        await self.registry.all()
        spawn = self._tasks.append
        spawn(asyncio.create_task(self.events.run(), name="empq-events"))
        spawn(asyncio.create_task(self.stats.run(), name="empq-stats"))
        spawn(asyncio.create_task(self.webhooks.consume(), name="empq-webhook-outbox"))
        spawn(
            asyncio.create_task(
                run_leased(
                    self.leases,
                    "webhooks",
                    self.webhooks.idle_seconds,
                    self.webhooks.deliver_round,
                    wake=self.webhooks.outbox_grew,
                ),
                name="empq-webhook-delivery",
            )
        )
        for name, interval, work, leased in tasks.schedule(self):
            if leased:
                coro = run_leased(self.leases, name, interval, work, wake=self.wakeups.get(name))
            else:
                coro = run_local(name, interval, work)
            spawn(asyncio.create_task(coro, name=f"empq-{name}"))
        await asyncio.wait_for(self.events.ready.wait(), timeout=10)
        log.info("hub %s started", self.hub_id)

    def _slot_freed(self, customer_id: str | None) -> None:
        """A job of a customer left its worker: if the customer is limited, a parked claim
        looks again (its jobs may be claimable now)."""
        if self.settings.max_running(customer_id) is not None:
            self.claims.slot_freed()

    def begin_shutdown(self, reason: str = "hub shutting down", reconnect_after: float = 1) -> None:
        """First stage of shutdown: stop taking work and tell every peer to reconnect later."""
        self.accepting = False
        self.claims.end_all(reason)
        self.connections.broadcast(
            out("server_disconnect", reason=reason, reconnect_after=reconnect_after)
        )

    async def stop(self) -> None:
        """Cancel and await every background task, then give up leases and close I/O."""
        await asyncio.gather(*(cancel_and_wait(t) for t in self._tasks))
        self._tasks.clear()
        self.dispatcher.close()
        await self.claims.close()
        with contextlib.suppress(Exception):
            await self.leases.release_all()
        await self.webhooks.close()
        log.info("hub %s stopped", self.hub_id)

    async def warnings_for(self, spec: JobSpec) -> list[str]:
        """Submit-time warnings from the cached worker list (no Redis round trip)."""
        key = (self.registry.version, spec.signature)
        cached = self._warn_cache.get(key)
        if cached is None:
            if len(self._warn_cache) > 10_000:
                self._warn_cache.clear()
            cached = warnings(spec, list(self.registry.known.values()))
            self._warn_cache[key] = cached
        return cached


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a task and wait for it to end, cancelling again if it swallowed one.

    Python 3.11's `asyncio.wait_for` (used inside redis-py) can lose a cancellation
    that races with its inner future finishing; one `cancel()` is then not enough.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "background task %s ended with an error", task.get_name(), exc_info=task.exception()
        )


async def run_local(name: str, interval: float, work: Any) -> None:
    """Every `interval` seconds, run `work` on this hub (no lease: local-only work)."""
    while True:
        try:
            await work()
        except Exception:
            log.exception("background task %s failed; it will run again", name)
        await asyncio.sleep(interval)
