"""The worker's own Prometheus metrics and the recent-jobs record its status page shows."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


@dataclass(slots=True)
class FinishedJob:
    """One job this worker ended, for the status page."""

    job_id: str
    job_type: str
    outcome: str
    seconds: float
    ended_at: float
    error: str | None = None


class BusyClock(Collector):
    """Seconds this worker spent busy (running at least one job) and idle (none).

    Counted from the moment the metrics were created; read at scrape time, so the
    current stretch is included.
    """

    def __init__(self) -> None:
        self._since = time.monotonic()
        self._busy = 0.0
        self._idle = 0.0
        self._running = 0

    def set_running(self, n: int) -> None:
        """`n` jobs run from now on."""
        now = time.monotonic()
        if self._running:
            self._busy += now - self._since
        else:
            self._idle += now - self._since
        self._since, self._running = now, n

    def seconds(self) -> tuple[float, float]:
        """(busy, idle) seconds so far."""
        stretch = time.monotonic() - self._since
        if self._running:
            return self._busy + stretch, self._idle
        return self._busy, self._idle + stretch

    def collect(self) -> list[CounterMetricFamily]:
        busy, idle = self.seconds()
        return [
            CounterMetricFamily(
                "empq_worker_busy_seconds", "Seconds with at least one job running", value=busy
            ),
            CounterMetricFamily(
                "empq_worker_idle_seconds", "Seconds with no job running", value=idle
            ),
        ]


class WorkerMetrics:
    """Counters in a registry of their own (several workers may share a process in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.busy = BusyClock()
        self.registry.register(self.busy)
        self.jobs = Counter(
            "empq_worker_jobs",
            "Jobs this worker ended, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.processing = Histogram(
            "empq_worker_processing_seconds",
            "Time from assignment to outcome",
            buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1800),
            registry=self.registry,
        )
        self.running = Gauge("empq_worker_running_jobs", "Jobs running now", registry=self.registry)
        self.connected = Gauge(
            "empq_worker_connected", "1 while connected to the hub", registry=self.registry
        )
        self.connector_healthy = Gauge(
            "empq_worker_connector_healthy",
            "1 when the connector's service answers",
            ["connector"],
            registry=self.registry,
        )
        self._by_outcome: dict[str, Counter] = {}
        self.recent: deque[FinishedJob] = deque(maxlen=50)
        # Jobs ended per minute, newest last: bounded however fast jobs go.
        self._per_minute: deque[list[int]] = deque(maxlen=61)

    def set_running(self, n: int) -> None:
        """`n` jobs are running now (the gauge and the busy/idle clock)."""
        self.running.set(n)
        self.busy.set_running(n)

    def finished(self, job: FinishedJob) -> None:
        """Record a job's end."""
        counter = self._by_outcome.get(job.outcome)
        if counter is None:
            counter = self._by_outcome[job.outcome] = self.jobs.labels(job.outcome)
        counter.inc()
        self.processing.observe(job.seconds)
        self.recent.appendleft(job)
        minute = int(job.ended_at // 60)
        if self._per_minute and self._per_minute[-1][0] == minute:
            self._per_minute[-1][1] += 1
        else:
            self._per_minute.append([minute, 1])

    def jobs_last_hour(self) -> int:
        """How many jobs ended in the past hour (to the minute)."""
        now_minute = int(time.time() // 60)
        return sum(count for minute, count in self._per_minute if minute > now_minute - 60)
