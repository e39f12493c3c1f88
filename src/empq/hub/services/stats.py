"""Queue and worker statistics for `GET /api/stats`, `stats_broadcast` and `/metrics`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from empq.protocol import out

if TYPE_CHECKING:
    from empq.broker import Broker
    from empq.hub.connections import Connections
    from empq.hub.registry import Registry


class StatsService:
    """Collects stats and sends `stats_broadcast` to subscribers on their intervals."""

    def __init__(self, broker: Broker, registry: Registry, connections: Connections) -> None:
        self.broker = broker
        self.registry = registry
        self.connections = connections
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A subscription changed: re-plan the next broadcast."""
        self._wake.set()

    async def collect(self) -> dict[str, Any]:
        """Queue depth by status and priority band, workers by status, throughput, times."""
        base = await self.broker.stats()
        workers = await self.registry.all()
        by_status = Counter(w.status.value for w in workers)
        jobs_by_status = dict(base.get("jobs_by_status", {}))
        stats: dict[str, Any] = dict(base)
        stats["jobs_by_status"] = jobs_by_status
        stats["queue_depth"] = int(jobs_by_status.get("queued", 0))
        stats["workers_by_status"] = {
            s: by_status.get(s, 0) for s in ("idle", "busy", "draining", "offline")
        }
        stats["workers_total"] = len(workers)
        stats["workers_connected"] = sum(1 for w in workers if w.connected)
        # Jobs that reached a final status in the last minute, counted from Redis (every
        # hub agrees, and a job done before this hub's first sample still counts).
        broker = self.broker
        now = broker.clock()
        last_minute = int(await broker.redis.zcount(broker.keys.finished, now - 60_000, "+inf"))
        stats["finished_last_minute"] = last_minute
        stats["throughput_per_second"] = round(last_minute / 60, 3)
        stats["hub_connections"] = len(self.connections.all)
        return stats

    async def run(self) -> None:
        """Broadcast to each stats subscriber when its interval is due."""
        while True:
            now = time.monotonic()
            due = [
                c
                for c in self.connections.all.values()
                if c.subs.stats_interval is not None and c.subs.stats_due <= now
            ]
            if due:
                text = out("stats_broadcast", **await self.collect()).dump()
                for conn in due:
                    conn.send(text)
                    conn.subs.stats_due = now + (conn.subs.stats_interval or 5)
            pending = [
                c.subs.stats_due
                for c in self.connections.all.values()
                if c.subs.stats_interval is not None
            ]
            wait = max(min(pending) - time.monotonic(), 0.01) if pending else 3600.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
