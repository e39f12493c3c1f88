"""Offer newly queued jobs to idle workers connected to this hub (`job_available`).

Triggered by every `job_update` event with status `queued` that this hub reads
from the shared stream, whichever hub or sweep queued the job, so two hubs on one
Redis offer work to all their workers. A job submitted through this hub is offered
at once, from the submit handler (`offer_submitted`), without waiting for its event
to come back from Redis; its event is then skipped here. The offer goes to the best-scoring worker
that can take the job now and has no unanswered offer; the worker then claims,
and the broker, not this offer, decides which job it gets (so an offer can never
let a lower-priority job jump a higher one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from empq.broker.base import Assignment, SubmitResult
from empq.broker.core import new_job_id
from empq.hub.registry import OFFER_HOLD_SECONDS, Reservation
from empq.hub.worker_handlers import send_assigned
from empq.matching import JobSpec, score
from empq.models import JobSubmission
from empq.protocol import now_ms, wire

if TYPE_CHECKING:
    from empq.hub.registry import LocalWorker
    from empq.hub.runtime import Hub

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

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        # signature -> spec; a signature is a hash of the spec, so entries never go stale.
        self._specs: dict[str, JobSpec] = {}
        # Jobs offered at submission whose `queued` event has not been read yet.
        self._offered: OrderedDict[str, None] = OrderedDict()
        self._releases: set[asyncio.Task[None]] = set()

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
        if not self._ready_worker():
            return 0
        spec = await self.spec_for(data)
        return self._offer(str(data["job_id"]), spec, data.get("priority"), event_ms)

    def _ready_worker(self) -> bool:
        local = self.hub.registry.local
        if not local or not self.hub.accepting:
            return False
        offered_before = time.monotonic() - OFFER_HOLD_SECONDS
        return any(lw.free_slots and lw.offered_at <= offered_before for lw in local.values())

    def pick(self, spec: JobSpec) -> LocalWorker | None:
        """The best-scoring local worker that can take a job of `spec` now, unoffered.

        Among equally good workers, the one given a job longest ago: they take turns,
        instead of the same one getting every offer while it keeps up.
        """
        if not self.hub.accepting:
            return None
        best: LocalWorker | None = None
        best_score = 0.0
        offered_before = time.monotonic() - OFFER_HOLD_SECONDS
        for lw in self.hub.registry.local.values():
            if lw.offered_at > offered_before or not lw.free_slots or not lw.can_take(spec):
                continue
            s = score(lw.caps, spec)
            if (
                best is None
                or s > best_score
                or (
                    s == best_score
                    and (lw.given_at, lw.worker_id) < (best.given_at, best.worker_id)
                )
            ):
                best, best_score = lw, s
        return best

    def _offer(self, job_id: str, spec: JobSpec, priority: Any, event_ms: int | None) -> int:
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
            self.hub.metrics.dispatch_latency.observe(max(time.time() * 1000 - event_ms, 0) / 1000)

    async def submit(self, sub: JobSubmission, spec: JobSpec) -> SubmitResult:
        """Queue one job submitted through this hub and offer it at once.

        With an idle local worker that can run it, the offer goes out together with the
        submission, and the job is claimed for that worker in the same round trip to
        Redis (`Broker.submit_reserving`): the worker's `claim_job`, which the offer
        brings back, is then answered from memory. The worker still asks: a job is
        never assigned to a worker that did not claim, and if it does not claim within
        `OFFER_HOLD_SECONDS`, the job goes back in line (`_release_unclaimed`; the
        claim-timeout sweep covers a hub that dies first).
        """
        broker = self.hub.broker
        started, job_id = now_ms(), new_job_id()
        self.expect([job_id])
        priority = sub.effective_priority
        target = self.pick(spec)
        if target is None:
            result = await broker.submit(sub, job_id)
            self.submitted(job_id, spec, priority, created=result.created, started_ms=started)
            return result
        loop = asyncio.get_running_loop()
        reservation = Reservation(loop.create_future())
        target.reservation = reservation
        target.offered_at = time.monotonic()
        # The offer goes out first, written to the worker's socket now: the worker's
        # claim takes two hops between processes to come back, Redis's reply to the
        # submission one, so the two arrive together. The submission is written right
        # behind it, in the same call. A claim that comes first waits for the
        # reservation (worker_handlers.claim_job).
        self._tell(target, job_id, spec, priority, started)
        assignment = None
        try:
            result, assignment = await broker.submit_reserving(
                sub, job_id, target.worker_id, target.caps, target.state, spec=spec
            )
            if not result.created:
                self._offered.pop(job_id, None)
        finally:
            if assignment is not None:
                self.hub.registry.hold(target, job_id, assignment.running)
                if reservation.claimed and not reservation.future.done():
                    # The worker's claim is already waiting: answer it now rather than
                    # a loop turn later, after this submit's reply is built.
                    send_assigned(target, assignment, 0)
                    reservation.sent = True
            if not reservation.future.done():
                reservation.future.set_result(assignment)
            if target.reservation is reservation and assignment is None:
                target.reservation = None
        if assignment is not None and not reservation.claimed:
            loop.call_later(
                OFFER_HOLD_SECONDS, self._release_unclaimed, target, reservation, assignment
            )
        return result

    def _release_unclaimed(
        self, lw: LocalWorker, reservation: Reservation, assignment: Assignment
    ) -> None:
        """The offered worker never claimed its reserved job: put the job back in line.

        Without this it would wait for the claim-timeout sweep (`EMPQ_CLAIM_TIMEOUT`,
        30 s by default) and lose an attempt, though it never reached the worker.
        """
        if reservation.claimed:
            return
        if lw.reservation is reservation:
            lw.reservation = None
        self.hub.registry.release(assignment.job_id)
        task = asyncio.get_running_loop().create_task(self._release(assignment))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, assignment: Assignment) -> None:
        try:
            if await self.hub.broker.release_reservation(assignment.job_id, assignment.claim_token):
                log.info("job %s: offer not claimed; back in the queue", assignment.job_id)
        except Exception as exc:  # noqa: BLE001 - the claim-timeout sweep still covers it
            log.warning("job %s: could not release its reservation: %s", assignment.job_id, exc)

    def capable_idle_count(self, spec: JobSpec) -> int:
        """How many local workers could take a job of `spec` right now."""
        return sum(
            1 for lw in self.hub.registry.local.values() if lw.free_slots and lw.can_take(spec)
        )
