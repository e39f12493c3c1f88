"""Tell workers connected to this hub about newly queued jobs.

Triggered by every `job_update` event with status `queued` that this hub reads
from the shared stream, whichever hub or sweep queued the job, so two hubs on one
Redis serve all their workers. A worker whose claim is parked (`claim_job` with
`wait_seconds`) and may run the job is woken to claim again (`Claims.queued`);
otherwise the best-scoring idle worker with no parked claim and no unanswered offer
is sent `job_available`, and claims if it wants. Either way the worker asked, and
the broker, not this choice, decides which job it gets, so a lower-priority job never
jumps a higher one. A job submitted through this hub is handled at once by the
submit path (`submit`), without waiting for its event to come back from Redis; its
event is then skipped here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from empq.broker.base import SubmitResult
from empq.broker.core import new_job_id
from empq.hub.fleet import warm_holders
from empq.hub.registry import OFFER_HOLD_SECONDS
from empq.matching import JobSpec, eviction_cost, is_warm, score
from empq.models import JobSubmission
from empq.protocol import now_ms, wire
from empq.status import WorkerStatus

if TYPE_CHECKING:
    from empq.broker import Broker
    from empq.hub.claims import Claims
    from empq.hub.metrics import HubMetrics
    from empq.hub.registry import LocalWorker, Registry

log = logging.getLogger("empq.hub.dispatch")

#: Submissions remembered until their `queued` event is read (a bound, not a target).
_OFFERED_MAX = 100_000


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

    def __init__(
        self,
        broker: Broker,
        registry: Registry,
        claims: Claims,
        metrics: HubMetrics,
        *,
        accepting: Callable[[], bool],
        warm_wait: float = 0.0,
    ) -> None:
        self.broker = broker
        #: `EMPQ_WARM_WAIT_SECONDS`: how long a job waits for a busy warm worker.
        self.warm_wait = warm_wait
        self.registry = registry
        self.claims = claims
        self.metrics = metrics
        self._accepting = accepting
        # signature -> spec; a signature is a hash of the spec, so entries never go stale.
        self._specs: dict[str, JobSpec] = {}
        # Jobs offered at submission whose `queued` event has not been read yet.
        self._offered: OrderedDict[str, None] = OrderedDict()
        # Offers waiting for a busy warm worker (`_defer`).
        self._timers: set[asyncio.TimerHandle] = set()

    def expect(self, job_ids: list[str]) -> None:
        """Jobs about to be submitted through this hub: their `queued` events offer nothing.

        Called before the submission, since the event may be read before it returns.
        """
        for job_id in job_ids:
            self._offered[job_id] = None
        while len(self._offered) > _OFFERED_MAX:
            self._offered.popitem(last=False)

    def submitted(
        self, job_id: str, spec: JobSpec, priority: int, *, created: bool, started_ms: int
    ) -> int:
        """Offer a job this hub just queued (an idempotent repeat queued nothing)."""
        if not created:
            self._offered.pop(job_id, None)
            return 0
        return self._offer(job_id, spec, priority, started_ms)

    def offered_at_submit(self, job_id: str) -> bool:
        """Whether the `queued` event of `job_id` is the submission this hub already offered."""
        return self._offered.pop(job_id, 0) is None

    async def spec_for(self, data: dict[str, Any]) -> JobSpec:
        """The matching spec of the job an event is about."""
        sig = data.get("signature")
        if isinstance(sig, str):
            spec = self._specs.get(sig)
            if spec is None:
                broker = self.broker
                raw = await broker.redis.hget(broker.keys.signatures, sig)
                if raw:
                    spec = JobSpec.from_json(raw)
                    if len(self._specs) > 50_000:
                        self._specs.clear()
                    self._specs[sig] = spec
            if spec is not None:
                return spec
        job = await self.broker.get(str(data["job_id"]))
        return JobSpec.of(job.type, job.customer_id, job.requirements)

    async def on_queued(self, data: dict[str, Any], event_ms: int | None) -> int:
        """A job was queued (by any hub): wake a parked claim that may take it, else offer
        it to an idle worker; returns how many workers were told."""
        if not self._ready_worker():
            return 0
        spec = await self.spec_for(data)
        return self._offer(str(data["job_id"]), spec, data.get("priority"), event_ms)

    def _ready_worker(self) -> bool:
        local = self.registry.local
        if not local or not self._accepting():
            return False
        offered_before = time.monotonic() - OFFER_HOLD_SECONDS
        return any(
            lw.free_slots
            and (lw.parked is not None or lw.claiming or lw.offered_at <= offered_before)
            for lw in local.values()
        )

    def pick(self, spec: JobSpec) -> LocalWorker | None:
        """The best-scoring local worker that can take a job of `spec` now, unoffered.

        The score puts a worker with the job's models warm first (`models_loaded`), then
        one whose loading them evicts no model only it holds (`matching.eviction_cost`).
        Among equally good workers, the one given a job longest ago: they take turns,
        instead of the same one getting every offer while it keeps up.
        """
        if not self._accepting():
            return None
        best: LocalWorker | None = None
        best_key: tuple[float, int, float, str] | None = None
        offered_before = time.monotonic() - OFFER_HOLD_SECONDS
        holders = warm_holders(self.registry.local.values(), spec)
        for lw in self.registry.local.values():
            if (
                lw.parked is not None
                or lw.offered_at > offered_before
                or not lw.free_slots
                or not lw.can_take(spec)
            ):
                continue
            key = (
                -score(lw.caps, spec, None, lw.models_loaded),
                eviction_cost(spec, lw.models_loaded, holders),
                lw.given_at,
                lw.worker_id,
            )
            if best_key is None or key < best_key:
                best, best_key = lw, key
        return best

    def _cold_now(self, spec: JobSpec) -> bool:
        """Whether the job's models are warm only on workers busy now (none parked or idle
        with them): then it waits `warm_wait_seconds` for one of those (`_defer`)."""
        wait = self.warm_wait
        if wait <= 0 or not spec.models:
            return False
        busy_warm = False
        offered_before = time.monotonic() - OFFER_HOLD_SECONDS
        for lw in self.registry.local.values():
            if not is_warm(spec, lw.models_loaded) or lw.verdicts.reasons(spec):
                continue
            if lw.info.status in (WorkerStatus.DRAINING, WorkerStatus.OFFLINE):
                continue
            ready = lw.free_slots and not lw.claim_lock.locked() and lw.can_take(spec)
            if ready and (lw.parked is not None or lw.offered_at <= offered_before):
                return False  # a warm worker can take it now: no need to wait
            busy_warm = True
        return busy_warm

    def _defer(self, job_id: str, spec: JobSpec, priority: Any, event_ms: int | None) -> None:
        """Offer the job after `warm_wait_seconds`, leaving it to a busy warm worker's
        next claim meanwhile (a claim in flight looks again, so it sees the job)."""
        for lw in self.registry.local.values():
            if lw.claiming and not lw.missed and lw.can_take(spec):
                lw.missed = True
        handles: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(handles[0])
            # Claimed meanwhile or not, waking a worker is safe: it claims the best job
            # it may run (or parks again).
            self._offer(job_id, spec, priority, event_ms, defer=False)

        loop = asyncio.get_running_loop()
        handles.append(loop.call_later(self.warm_wait, fire))
        self._timers.add(handles[0])

    def close(self) -> None:
        """Drop the deferred offers (the hub is stopping)."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    def _offer(
        self,
        job_id: str,
        spec: JobSpec,
        priority: Any,
        event_ms: int | None,
        *,
        defer: bool = True,
    ) -> int:
        """Wake a parked claim that may take the job, else offer it to an idle worker."""
        if not self._accepting() or spec.service_type in self.broker.paused_now:
            return 0  # (a paused service's job is claimable only after its resume)
        if defer and self._cold_now(spec):
            self._defer(job_id, spec, priority, event_ms)
            return 0
        if self.claims.queued(spec):
            if event_ms is not None:
                self._observe(event_ms)
            return 1
        best = self.pick(spec)
        if best is None:
            return 0
        self._tell(best, job_id, spec, priority, event_ms)
        return 1

    def _tell(
        self, lw: LocalWorker, job_id: str, spec: JobSpec, priority: Any, event_ms: int | None
    ) -> None:
        lw.offered_at = time.monotonic()
        lw.conn.send(
            wire(
                "job_available",
                job_id=job_id,
                job_type=spec.type,
                priority=priority,
                requirements_summary=requirements_summary(spec),
                worker_id=lw.worker_id,
            )
        )
        if event_ms is not None:
            self._observe(event_ms)

    def _observe(self, event_ms: int) -> None:
        self.metrics.dispatch_latency.observe(max(time.time() * 1000 - event_ms, 0) / 1000)

    async def submit(self, sub: JobSubmission, spec: JobSpec) -> SubmitResult:
        """Queue one job submitted through this hub and tell a worker about it at once.

        A worker whose claim is parked here and that may run the job asked for work:
        the job is claimed for it in the same Redis call as the submission, if it is the
        best job that worker may run (`Claims.submit`). Otherwise an idle worker with no
        parked claim is offered it (`job_available`) and claims it if it wants it.
        """
        started, job_id = now_ms(), new_job_id()
        self.expect([job_id])
        parked = self.claims.parked_for(spec) if self._accepting() else None
        if parked is not None and self._cold_now(spec):
            parked = None  # its models are warm on a busy worker: `_offer` waits for it
        if parked is not None:
            result, given = await self.claims.submit(sub, spec, job_id, parked)
            if given or not result.created:
                self._offered.pop(job_id, None)
                return result
            # Not the best job for that worker (it claims again for the better one): the
            # job is queued like any other, for the next parked or idle worker.
            self._offer(job_id, spec, sub.effective_priority, started)
            return result
        result = await self.broker.submit(sub, job_id)
        self.submitted(
            job_id, spec, sub.effective_priority, created=result.created, started_ms=started
        )
        return result

    def capable_idle_count(self, spec: JobSpec) -> int:
        """How many local workers could take a job of `spec` right now."""
        return sum(1 for lw in self.registry.local.values() if lw.free_slots and lw.can_take(spec))
