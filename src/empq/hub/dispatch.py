"""Offer newly queued jobs to idle workers connected to this hub (`job_available`).

Triggered by every `job_update` event with status `queued` that this hub reads
from the shared stream, whichever hub or sweep queued the job, so two hubs on one
Redis offer work to all their workers. The offer goes to the best-scoring worker
that can take the job now and has no unanswered offer; the worker then claims,
and the broker, not this offer, decides which job it gets (so an offer can never
let a lower-priority job jump a higher one).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from empq.matching import JobSpec, score
from empq.protocol import out

if TYPE_CHECKING:
    from empq.hub.registry import LocalWorker
    from empq.hub.runtime import Hub

log = logging.getLogger("empq.hub.dispatch")


def requirements_summary(spec: JobSpec) -> dict[str, Any]:
    """The few requirement fields a worker needs to decide whether to claim."""
    summary: dict[str, Any] = {}
    if spec.service_type is not None:
        summary["service_type"] = spec.service_type
    if spec.models:
        summary["models"] = list(spec.models)
    if spec.component is not None:
        summary["component"] = spec.component
    if spec.workflow is not None:
        summary["workflow"] = spec.workflow
    if spec.gpu_memory_gb is not None:
        summary["gpu_memory_gb"] = spec.gpu_memory_gb
    if spec.isolation.value != "none":
        summary["customer_isolation"] = spec.isolation.value
    return summary


class Dispatcher:
    """Sends `job_available` to the best idle capable local worker."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        # signature -> spec; a signature is a hash of the spec, so entries never go stale.
        self._specs: dict[str, JobSpec] = {}

    async def spec_for(self, data: dict[str, Any]) -> JobSpec:
        """The matching spec of the job an event is about."""
        sig = data.get("signature")
        if isinstance(sig, str):
            spec = self._specs.get(sig)
            if spec is None:
                broker = self.hub.broker
                raw = await broker.redis.hget(broker.keys.signatures, sig)
                if raw:
                    spec = JobSpec.from_json(raw)
                    if len(self._specs) > 50_000:
                        self._specs.clear()
                    self._specs[sig] = spec
            if spec is not None:
                return spec
        job = await self.hub.broker.get(str(data["job_id"]))
        return JobSpec.of(job.type, job.customer_id, job.requirements)

    async def on_queued(self, data: dict[str, Any], event_ms: int | None) -> int:
        """Offer a just-queued job; returns how many workers were told."""
        local = self.hub.registry.local
        if not local or not self.hub.accepting:
            return 0
        if not any(lw.free_slots and not lw.offer_pending for lw in local.values()):
            return 0
        spec = await self.spec_for(data)
        best: LocalWorker | None = None
        best_score = 0.0
        for lw in local.values():
            if lw.offer_pending or not lw.free_slots or not lw.can_take(spec):
                continue
            s = score(lw.caps, spec)
            if (
                best is None
                or s > best_score
                or (s == best_score and lw.worker_id < best.worker_id)
            ):
                best, best_score = lw, s
        if best is None:
            return 0
        best.offered_at = time.monotonic()
        best.conn.send(
            out(
                "job_available",
                job_id=data["job_id"],
                job_type=spec.type,
                priority=data.get("priority"),
                requirements_summary=requirements_summary(spec),
                worker_id=best.worker_id,
            )
        )
        if event_ms is not None:
            self.hub.metrics.dispatch_latency.observe(max(time.time() * 1000 - event_ms, 0) / 1000)
        return 1

    def capable_idle_count(self, spec: JobSpec) -> int:
        """How many local workers could take a job of `spec` right now."""
        return sum(
            1 for lw in self.hub.registry.local.values() if lw.free_slots and lw.can_take(spec)
        )
