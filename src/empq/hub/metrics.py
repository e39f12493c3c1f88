"""Prometheus metrics of one hub, in a registry of its own (several hubs can share a process).

Names, labels and what bounds each label are listed in docs/metrics.md. Job counters
count the changes this hub applied (see `empq.lifecycle`), so summing over hubs counts
each job once. The `type` label takes the first `max_job_types` job types seen; any
further type is counted as `other`, so a client inventing types cannot grow the series
without bound.
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from empq.hub.usage_metrics import GpuSeconds
from empq.matching import static_reasons

if TYPE_CHECKING:
    from empq.broker import Broker
    from empq.hub.registry import Registry

#: A job still running this long past its timeout is overdue: the sweep missed it.
OVERDUE_GRACE_MS = 60_000
NO_SERVICE = "none"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Queue waits and runs: from a fast simulation to a long video job.
_JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
OTHER_TYPE = "other"


class HubMetrics:
    """The hub's counters, gauges and histograms."""

    def __init__(self, max_job_types: int = 100, max_customers: int = 100) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.gpu_seconds = GpuSeconds(max_customers)
        r.register(self.gpu_seconds)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.max_job_types = max_job_types
        self._types: set[str] = set()
        self.submitted = Counter(
            "empq_jobs_submitted_total", "Jobs queued by submissions", ["type"], registry=r
        )
        self.assigned = Counter(
            "empq_jobs_assigned_total",
            "Jobs handed to a worker (each attempt)",
            ["type"],
            registry=r,
        )
        self.finished = Counter(
            "empq_jobs_finished_total",
            "Jobs that reached a final status, by outcome (completed, failed, timeout, cancelled)",
            ["type", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "empq_job_retries_total",
            "Attempts that ended without success and will run again, by cause "
            "(failed, timeout, worker_lost, not_accepted)",
            ["type", "cause"],
            registry=r,
        )
        self.handbacks = Counter(
            "empq_job_handbacks_total",
            "Jobs a worker handed back unstarted (no attempt counted)",
            ["type"],
            registry=r,
        )
        self.ready = Gauge("empq_ready", "1 while this hub's Redis answers", registry=r)
        self.queued_by_service = Gauge(
            "empq_queued_jobs",
            "Queued jobs by requirements.service_type (none: no service asked)",
            ["service_type"],
            registry=r,
        )
        self.service_workers = Gauge(
            "empq_service_workers",
            "Connected workers offering each service type that has queued jobs or workers",
            ["service_type"],
            registry=r,
        )
        self.unrunnable = Gauge(
            "empq_unrunnable_jobs",
            "Queued jobs that no connected worker could ever run, by service type",
            ["service_type"],
            registry=r,
        )
        self.overdue = Gauge(
            "empq_jobs_overdue",
            "Jobs still held by a worker more than a minute past their timeout",
            registry=r,
        )
        self.queue_wait = Histogram(
            "empq_job_queue_wait_seconds",
            "From a job entering the queue to its assignment",
            ["type"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.run_time = Histogram(
            "empq_job_run_seconds",
            "From assignment (or acceptance) to the attempt's end, by outcome",
            ["type", "outcome"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.jobs = Gauge("empq_jobs", "Jobs by status", ["status"], registry=r)
        self.queue_depth = Gauge("empq_queue_depth", "Jobs waiting to be claimed", registry=r)
        self.workers = Gauge("empq_workers", "Known workers by status", ["status"], registry=r)
        self.connections = Gauge(
            "empq_ws_connections", "Open WebSocket connections on this hub", registry=r
        )
        self.claim_latency = Histogram(
            "empq_claim_latency_seconds",
            "Time to answer claim_job (one broker call)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dispatch_latency = Histogram(
            "empq_dispatch_latency_seconds",
            "From a job entering the queue to job_available being sent",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.messages = Counter(
            "empq_ws_messages_total", "WebSocket messages received", ["type"], registry=r
        )
        self.message_errors = Counter(
            "empq_ws_message_errors_total", "WebSocket messages refused", ["code"], registry=r
        )
        self.webhook_deliveries = Counter(
            "empq_webhook_deliveries_total", "Webhook deliveries that succeeded", registry=r
        )
        self.webhook_failures = Counter(
            "empq_webhook_failures_total",
            "Webhook delivery attempts that failed",
            ["final"],
            registry=r,
        )
        self.slow_consumers = Counter(
            "empq_ws_slow_consumers_total",
            "Sockets closed because they fell too far behind",
            registry=r,
        )

    def type_label(self, job_type: str) -> str:
        """`job_type`, or `other` once `max_job_types` types have been seen."""
        if job_type in self._types:
            return job_type
        if len(self._types) < self.max_job_types:
            self._types.add(job_type)
            return job_type
        return OTHER_TYPE

    def job_submitted(self, job_type: str) -> None:
        self.submitted.labels(self.type_label(job_type)).inc()

    def job_assigned(self, job_type: str, wait: float) -> None:
        t = self.type_label(job_type)
        self.assigned.labels(t).inc()
        self.queue_wait.labels(t).observe(wait)

    def job_run(self, job_type: str, outcome: str, seconds: float) -> None:
        self.run_time.labels(self.type_label(job_type), outcome).observe(seconds)

    def job_finished(self, job_type: str, outcome: str) -> None:
        self.finished.labels(self.type_label(job_type), outcome).inc()

    def job_ended(self, job_type: str, outcome: str, seconds: float) -> None:
        """A run ended with a final outcome."""
        self.job_run(job_type, outcome, seconds)
        self.job_finished(job_type, outcome)

    def job_retry(self, job_type: str, cause: str) -> None:
        self.retries.labels(self.type_label(job_type), cause).inc()

    def job_handed_back(self, job_type: str) -> None:
        self.handbacks.labels(self.type_label(job_type)).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)

    async def refresh(self, broker: Broker, registry: Registry) -> None:
        """Set the gauges that are read from Redis and the registry at scrape time.

        With Redis gone only `empq_ready` (0) changes: the scrape still answers.
        """
        from redis.exceptions import RedisError

        try:
            stats = await broker.stats()
            queued = await broker.queued_specs()
            now = broker.clock()
            overdue = await broker.redis.zcount(broker.keys.running, "-inf", now - OVERDUE_GRACE_MS)
            workers = await registry.all()
            self.gpu_seconds.totals = await broker.gpu_seconds_totals()
        except (RedisError, OSError):
            self.ready.set(0)
            return
        self.ready.set(1)
        for status, n in stats["jobs_by_status"].items():
            self.jobs.labels(status).set(n)
        self.queue_depth.set(stats["jobs_by_status"].get("queued", 0))
        by_status = Tally(w.status.value for w in workers)
        for status in ("idle", "busy", "draining", "offline"):
            self.workers.labels(status).set(by_status.get(status, 0))
        self.overdue.set(overdue)
        live = [w for w in workers if w.connected and w.status != "offline"]
        depth: Tally[str] = Tally()
        stuck: Tally[str] = Tally()
        for spec, count in queued.values():
            service = spec.service_type or NO_SERVICE
            depth[service] += count
            if not any(not static_reasons(w.capabilities, spec) for w in live):
                stuck[service] += count
        offered: Tally[str] = Tally(s for w in live for s in set(w.capabilities.services))
        # Services come from workers' declarations and submissions: bounded like types.
        services = {self.type_label(s) for s in (*depth, *offered)}
        for gauge in (self.queued_by_service, self.service_workers, self.unrunnable):
            gauge.clear()
        for service in services:
            self.queued_by_service.labels(service).set(depth.get(service, 0))
            self.service_workers.labels(service).set(offered.get(service, 0))
            self.unrunnable.labels(service).set(stuck.get(service, 0))
