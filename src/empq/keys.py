"""Every Redis key empq uses. Nothing else builds key strings.

All keys start with the deployment prefix (`EMPQ_KEY_PREFIX`) and carry one hash
tag, so every key of a deployment lives in one Redis Cluster slot and any script
may touch any set of them. See docs/redis-layout.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Keys:
    """Key names for one deployment prefix.

    The fixed names are built once per instance (`cached_property`): a submission
    names about twenty keys, on the hub's hot path.
    """

    prefix: str = "empq"

    @cached_property
    def base(self) -> str:
        # The tag repeats the prefix so that two deployments sharing a cluster
        # land in different slots.
        return f"{self.prefix}:{{{self.prefix}}}"

    def job(self, job_id: str) -> str:
        """Hash: one job record."""
        return f"{self.base}:job:{job_id}"

    def sig_queue(self, signature: str) -> str:
        """Sorted set (lex, score 0): queued jobs of one requirements signature."""
        return f"{self.base}:q:{signature}"

    def workflow(self, workflow_id: str) -> str:
        """Hash: a workflow's first-seen priority and start time."""
        return f"{self.base}:wf:{workflow_id}"

    def worker_jobs(self, worker_id: str) -> str:
        """Set: ids of the jobs a worker holds."""
        return f"{self.base}:wjobs:{worker_id}"

    def by_customer(self, customer_id: str) -> str:
        """Sorted set (score = sequence): every job of a customer, for listing."""
        return f"{self.base}:idx:customer:{customer_id}"

    def by_type(self, job_type: str) -> str:
        """Sorted set (score = sequence): every job of a type, for listing."""
        return f"{self.base}:idx:type:{job_type}"

    @cached_property
    def seq(self) -> str:
        """String counter: submission sequence."""
        return f"{self.base}:seq"

    @cached_property
    def queued(self) -> str:
        """Sorted set (lex, score 0): every queued job's order key: global claim order."""
        return f"{self.base}:queued"

    @cached_property
    def paused_services(self) -> str:
        """Set: the service types whose queued jobs claims skip (queue control)."""
        return f"{self.base}:paused"

    @cached_property
    def signatures(self) -> str:
        """Hash: signature -> JobSpec JSON, for every signature with a queue."""
        return f"{self.base}:sigs"

    @cached_property
    def signatures_version(self) -> str:
        """String: a fresh random value whenever `signatures` gains or loses an entry.

        Random, not a counter, so a flushed or restarted Redis can never repeat a
        version a hub has cached.
        """
        return f"{self.base}:sigs:version"

    @cached_property
    def fair_turns(self) -> str:
        """Hash: "<100 - priority>|<customer>" -> the customer's next fair-share turn there."""
        return f"{self.base}:fair"

    def submit_bucket(self, customer_id: str) -> str:
        """Hash: a customer's submission token bucket (`tokens`, `at`), see rate.lua."""
        return f"{self.base}:rate:{customer_id}"

    def usage(self, hour: int) -> str:
        """Hash: one hour's usage (hours since the epoch): "<customer>|<what>" -> amount.

        Expires after `usage_retention`, so the number of these keys is bounded.
        """
        return f"{self.base}:usage:{hour}"

    @cached_property
    def delayed(self) -> str:
        """Sorted set: job id -> ms when its retry is due."""
        return f"{self.base}:delayed"

    @cached_property
    def claims(self) -> str:
        """Sorted set: job id -> ms by which its assignment must be accepted."""
        return f"{self.base}:claims"

    @cached_property
    def running(self) -> str:
        """Sorted set: job id -> ms of its job timeout (all assigned/accepted/in_progress)."""
        return f"{self.base}:running"

    @cached_property
    def finished(self) -> str:
        """Sorted set: job id -> ms it reached a final status, for retention clean-up."""
        return f"{self.base}:finished"

    @cached_property
    def all_jobs(self) -> str:
        """Sorted set: job id -> sequence, for listing newest first."""
        return f"{self.base}:idx:all"

    @cached_property
    def counts(self) -> str:
        """Hash: status -> number of jobs in it."""
        return f"{self.base}:counts"

    @cached_property
    def idempotency(self) -> str:
        """Hash: idempotency key -> job id."""
        return f"{self.base}:idem"

    @cached_property
    def events(self) -> str:
        """Stream: every job and worker event, written in the same script as the change."""
        return f"{self.base}:events"

    @cached_property
    def workers(self) -> str:
        """Hash: worker id -> WorkerInfo JSON."""
        return f"{self.base}:workers"

    @cached_property
    def heartbeats(self) -> str:
        """Sorted set: worker id -> ms of its last heartbeat."""
        return f"{self.base}:heartbeats"

    @cached_property
    def stats(self) -> str:
        """Hash: running totals (completed, failed, wait and run time sums, and
        `gpu_seconds|<customer>` for the metrics)."""
        return f"{self.base}:stats"

    def lease(self, name: str) -> str:
        """String: the leader lease of one background task."""
        return f"{self.base}:lease:{name}"

    @cached_property
    def webhooks(self) -> str:
        """Hash: webhook id -> registration JSON."""
        return f"{self.base}:webhooks"

    @cached_property
    def webhook_outbox(self) -> str:
        """Sorted set: delivery id -> ms when it is next due."""
        return f"{self.base}:webhooks:outbox"

    @cached_property
    def webhook_deliveries(self) -> str:
        """Hash: delivery id -> delivery JSON (target, body, attempt)."""
        return f"{self.base}:webhooks:deliveries"
