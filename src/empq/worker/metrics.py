"""The worker's own Prometheus metrics and the recent-jobs record its status page shows."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(slots=True)
class FinishedJob:
    """One job this worker ended, for the status page."""

    job_id: str
    job_type: str
    outcome: str
    seconds: float
    ended_at: float
    error: str | None = None


class WorkerMetrics:
    """Counters in a registry of their own (several workers may share a process in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
