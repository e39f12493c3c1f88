"""Health-gated claiming: the worker takes a service's jobs only while the service answers.

Each connector's `health()` runs on its own schedule: every heartbeat interval while
healthy, and with back-off (0.5 s doubling to 10 s) while not, so a service that
comes back is noticed within seconds. A job that could not reach its service before
the service started it marks the service down at once (`report_down`), without
waiting for the next check.

While a service is down the worker does not claim its jobs: with every connector
down it claims nothing; with some down it stops offering their services (an
`update_capabilities` without them). The state goes to the hub in each heartbeat's
`connector_status`: `{healthy, state: "healthy"|"unreachable", since, detail,
services, summary}`, where `summary` is the line explain, `empq workers` and the
dashboard show (`comfyui: unreachable since 2026-12-07T14:05:01Z: ...`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from empq.connectors.base import Connector

log = logging.getLogger("empq.worker.health")

#: A health check that takes longer than this counts as failed.
HEALTH_TIMEOUT = 5.0
BACKOFF_MIN = 0.5
BACKOFF_MAX = 10.0


@dataclass(slots=True)
class ServiceState:
    """What the worker knows of one connector's service."""

    connector: Connector
    healthy: bool = True
    #: False only while the service is known down; gates claiming. A health check
    #: that itself crashes (a bug in the connector) reports unhealthy but does not
    #: stop the worker taking jobs: the service may well be fine.
    reachable: bool = True
    #: Wall-clock time of the last change between healthy and not.
    since: float = field(default_factory=time.time)
    detail: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    failures: int = 0
    checked: bool = False
    next_check: float = 0.0

    @property
    def name(self) -> str:
        return self.connector.name

    @property
    def state(self) -> str:
        """`healthy`, `unreachable` (claims gated) or `check_failed` (a broken check)."""
        if self.healthy:
            return "healthy"
        return "check_failed" if self.reachable else "unreachable"

    def summary(self) -> str:
        """`comfyui: unreachable since <ISO time>: <detail>` (or `comfyui: healthy`)."""
        if self.healthy:
            return f"{self.name}: healthy"
        when = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = f"{self.name}: {self.state.replace('_', ' ')} since {when}"
        return f"{text}: {self.detail}" if self.detail else text

    def as_status(self) -> dict[str, Any]:
        """The `connector_status` entry of heartbeats."""
        return {
            "healthy": self.healthy,
            "state": self.state,
            "since": datetime.fromtimestamp(self.since, UTC).isoformat(),
            "detail": self.detail,
            "info": self.info,
            "services": list(self.connector.services) or [self.name],
            "summary": self.summary(),
        }


def backoff(failures: int) -> float:
    """Seconds until the next check of a service that failed `failures` checks in a row."""
    return float(min(BACKOFF_MAX, BACKOFF_MIN * 2 ** min(max(failures - 1, 0), 16)))


Changed = Callable[[ServiceState], Awaitable[None]]


class HealthMonitor:
    """Runs every connector's health check on its schedule and keeps the results."""

    def __init__(
        self,
        connectors: list[Connector],
        interval: float,
        on_change: Changed | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.states = {c.name: ServiceState(c) for c in connectors}
        self.interval = interval
        self.on_change = on_change
        self._clock = clock
        self._wake = asyncio.Event()
        self._changed: list[ServiceState] = []
        #: Notified after each change has been handled (the hub told).
        self.announced = asyncio.Condition()

    # ------------------------------------------------------------------ reading
    def any_healthy(self) -> bool:
        """True while at least one connector's service answers."""
        return any(s.reachable for s in self.states.values())

    def down_services(self) -> set[str]:
        """Services no healthy connector serves."""
        down = {
            svc for s in self.states.values() if not s.reachable for svc in s.connector.services
        }
        up = {svc for s in self.states.values() if s.reachable for svc in s.connector.services}
        return down - up

    def status(self) -> dict[str, dict[str, Any]]:
        """`connector_status` for heartbeats."""
        return {name: s.as_status() for name, s in self.states.items()}

    # ------------------------------------------------------------------ changing
    def report_down(self, connector: Connector, detail: str) -> None:
        """A job could not reach `connector`'s service: it is down from now."""
        state = self.states.get(connector.name)
        if state is None:
            return
        self._record(state, False, detail, {}, reachable=False)
        self._wake.set()

    async def check(self, state: ServiceState) -> None:
        """Run one health check now and record it."""
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                health = await state.connector.health()
            healthy, detail, info = health.healthy, health.detail, health.info
            reachable = healthy
        except TimeoutError:
            healthy, detail, info, reachable = False, "health check timed out", {}, False
        except Exception as exc:  # a broken health check is reported, not fatal
            log.exception("connector %s health check failed", state.name)
            healthy, detail, info, reachable = False, f"health check failed: {exc}", {}, True
        self._record(state, healthy, detail, info, reachable=reachable)

    async def check_all(self) -> None:
        """Check every connector now (at start)."""
        for state in self.states.values():
            await self.check(state)
        await self._announce()

    def _record(
        self,
        state: ServiceState,
        healthy: bool,
        detail: str | None,
        info: Any,
        *,
        reachable: bool,
    ) -> None:
        now = self._clock()
        changed = state.checked and reachable != state.reachable
        if not state.checked and not reachable:
            changed = True  # down from the start: say so once
        if changed:
            state.since = time.time()
            self._changed.append(state)
        state.checked = True
        state.healthy, state.detail, state.info = healthy, detail, dict(info or {})
        state.reachable = reachable
        state.failures = 0 if reachable else state.failures + 1
        state.next_check = now + (self.interval if reachable else backoff(state.failures))

    async def _announce(self) -> None:
        changed, self._changed = self._changed, []
        for state in changed:
            if state.reachable:
                log.info("%s: service answers again; claiming its jobs", state.name)
            else:
                log.warning("%s; not claiming its jobs until it answers", state.summary())
            if self.on_change is not None:
                await self.on_change(state)
        if changed:
            async with self.announced:
                self.announced.notify_all()

    async def wait_reachable(self, name: str, reachable: bool) -> None:
        """Until connector `name`'s change to `reachable` has been announced."""
        async with self.announced:
            await self.announced.wait_for(
                lambda: self.states[name].reachable is reachable and not self._changed
            )

    async def run(self) -> None:
        """Check each service when due, until cancelled."""
        while True:
            now = self._clock()
            for state in self.states.values():
                if state.next_check <= now:
                    await self.check(state)
            await self._announce()
            wait = min((s.next_check for s in self.states.values()), default=now + self.interval)
            self._wake.clear()
            try:
                async with asyncio.timeout(max(0.0, wait - self._clock())):
                    await self._wake.wait()
            except TimeoutError:
                pass
