"""Prometheus metrics of one hub, in a registry of its own (several hubs can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class HubMetrics:
    """The hub's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
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

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
