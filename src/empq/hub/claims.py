"""Answering workers' claims: at once, parked until a job comes, or after an outcome.

A worker pulls: the hub never claims a job for a worker that has not asked. A
`claim_job` (or the `claim_next` of a `complete_job`, `fail_job` or `release_job`) is
answered with the best jobs the worker may run at that moment. With `wait_seconds`
and nothing to give, the claim is *parked*: it waits on this hub until a job the
worker may run is queued (through any hub: `queued` is called from the event pump,
and from the submit path for jobs submitted here), then claims again, or answers
`no_job_available` when the wait ends (CONTRACT §9).

Two races are closed here. A job queued while a claim is in flight to Redis may have
been queued just after the claim looked: the worker is marked `missed` and looks
again before parking. Two claims for one worker never run at once (its
`claim_lock`), so they never share out the same free slots.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from empq.codec import assigned_message
from empq.hub.fleet import warm_holders
from empq.hub.registry import LocalWorker, ParkedClaim, Registry
from empq.matching import JobSpec, eviction_cost, score
from empq.protocol import wire
from empq.status import WorkerStatus

if TYPE_CHECKING:
    from empq.broker import Assignment, Broker, SubmitResult
    from empq.hub.metrics import HubMetrics
    from empq.models import JobSubmission

log = logging.getLogger("empq.hub.claims")

#: Looks again at most this many times when jobs keep arriving during its claim.
_LOOKS = 4


class Claims:
    """Claims of the workers connected to this hub."""

    def __init__(
        self,
        broker: Broker,
        registry: Registry,
        metrics: HubMetrics,
        *,
        wait_max: float,
        accepting: Callable[[], bool],
    ) -> None:
        self.broker = broker
        self.registry = registry
        self.metrics = metrics
        self.wait_max = wait_max
        self.accepting = accepting
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ answering

    async def claim(
        self,
        lw: LocalWorker,
        max_jobs: int,
        wait_seconds: float,
        *,
        after: asyncio.Future[Any] | None = None,
    ) -> None:
        """Answer one claim of `lw`; a claim it had parked ends first (this one replaces it).

        With `after` (the outcome the claim came with, as `claim_next`), the claim goes to
        Redis at once, beside that outcome, and its answer is sent once `after` is done
        (whatever its result), so that it follows the outcome's ack.
        """
        self.end_parked(lw, "replaced by a new claim")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait_seconds, self.wait_max)
        await self._serve(lw, max_jobs, deadline, after)

    async def _serve(
        self,
        lw: LocalWorker,
        max_jobs: int,
        deadline: float,
        after: asyncio.Future[Any] | None = None,
    ) -> None:
        """Claim for `lw` now; park it if it may wait and nothing could be given."""
        async with lw.claim_lock:
            if self.registry.local.get(lw.worker_id) is not lw:
                return  # it went away (or registered again) meanwhile
            for _ in range(_LOOKS):
                wanted = min(max_jobs, lw.free_slots)
                if wanted <= 0:
                    await _settled(after)
                    lw.conn.send(
                        wire("no_job_available", worker_id=lw.worker_id, reason="no free slot")
                    )
                    return
                lw.claiming, lw.missed = True, False
                t0 = time.perf_counter()
                try:
                    assignments = await self.broker.claim(
                        lw.worker_id,
                        lw.caps,
                        lw.state,
                        max_jobs=wanted,
                        models_loaded=lw.models_loaded,
                    )
                    self.metrics.claim_latency.observe(time.perf_counter() - t0)
                    # Still `claiming` while the outcome it came with settles: a job
                    # queued meanwhile marks it `missed`, so it looks again, not parks.
                    await _settled(after)
                except (RedisError, OSError):
                    # The script may have run with its reply lost: settle that later.
                    self._spawn(self._reconcile(lw))
                    raise
                finally:
                    lw.claiming = False
                if assignments:
                    self.give(lw, assignments)
                    return
                if not lw.missed:
                    break
            if deadline > asyncio.get_running_loop().time() and self._may_park(lw):
                self._park(lw, ParkedClaim(max_jobs, deadline))
            else:
                lw.conn.send(wire("no_job_available", worker_id=lw.worker_id))

    def _park(self, lw: LocalWorker, parked: ParkedClaim) -> None:
        parked.timer = asyncio.get_running_loop().call_at(parked.deadline, self._expire, lw, parked)
        lw.parked = parked

    def _repark(self, lw: LocalWorker, parked: ParkedClaim) -> None:
        """Put back a parked claim taken for a claim that gave nothing (or answer it)."""
        if self.registry.local.get(lw.worker_id) is not lw or lw.parked is not None:
            return
        if parked.deadline > asyncio.get_running_loop().time() and self._may_park(lw):
            self._park(lw, parked)
        else:
            lw.conn.send(wire("no_job_available", worker_id=lw.worker_id))

    def _may_park(self, lw: LocalWorker) -> bool:
        return self.accepting() and lw.info.status not in (
            WorkerStatus.DRAINING,
            WorkerStatus.OFFLINE,
        )

    def give(self, lw: LocalWorker, assignments: list[Assignment]) -> None:
        """Hold the jobs for `lw` and send one `job_assigned` for each."""
        for i, a in enumerate(assignments):
            self.registry.hold(lw, a.job_id, a.running, a.event_id, a.fields.get("sig"))
            lw.conn.send(
                assigned_message(
                    a.job_id,
                    a.fields,
                    worker_id=lw.worker_id,
                    claim_token=a.claim_token,
                    claim_timeout=a.claim_timeout,
                    claim_remaining=len(assignments) - 1 - i,
                )
            )

    def _expire(self, lw: LocalWorker, parked: ParkedClaim) -> None:
        if lw.parked is parked:
            lw.parked = None
            lw.conn.send(wire("no_job_available", worker_id=lw.worker_id, reason="wait ended"))

    def end_parked(self, lw: LocalWorker, reason: str) -> None:
        """Answer `lw`'s parked claim, if any, with `no_job_available` (its slots changed)."""
        if lw.unpark() is not None:
            lw.conn.send(wire("no_job_available", worker_id=lw.worker_id, reason=reason))

    def end_all(self, reason: str) -> None:
        """Answer every parked claim (the hub is shutting down)."""
        for lw in list(self.registry.local.values()):
            self.end_parked(lw, reason)

    # ------------------------------------------------------------------ new jobs

    def parked_for(self, spec: JobSpec) -> LocalWorker | None:
        """The best parked worker that can take a job of `spec` now.

        Best by `matching.score`: one with the job's models warm first; among cold ones,
        the one whose warm models are also warm elsewhere (`matching.eviction_cost`).
        Among equally good workers, the one given a job longest ago: they take turns.
        """
        best: LocalWorker | None = None
        best_key: tuple[float, int, float, str] | None = None
        holders = warm_holders(self.registry.local.values(), spec)
        for lw in self.registry.local.values():
            if lw.parked is None or lw.claim_lock.locked() or not lw.can_take(spec):
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

    def queued(self, spec: JobSpec) -> bool:
        """A job of `spec` was queued: wake the best parked worker that can take it.

        Returns whether one was woken. Claims in flight for workers that could take it
        are told to look again before they park.
        """
        for other in self.registry.local.values():
            if other.claiming and not other.missed and other.can_take(spec):
                other.missed = True
        lw = self.parked_for(spec)
        if lw is None:
            return False
        parked = lw.unpark()
        assert parked is not None
        self._spawn(self._serve_parked(lw, parked))
        return True

    def slot_freed(self) -> bool:
        """A customer with a `max_running` limit lost a held job: its queued jobs may be
        claimable again, so the parked worker given a job longest ago looks again."""
        waiting = [
            lw for lw in self.registry.local.values() if lw.parked and not lw.claim_lock.locked()
        ]
        if not waiting:
            return False
        lw = min(waiting, key=lambda w: (w.given_at, w.worker_id))
        parked = lw.unpark()
        assert parked is not None
        self._spawn(self._serve_parked(lw, parked))
        return True

    async def _serve_parked(self, lw: LocalWorker, parked: ParkedClaim) -> None:
        """Claim again for a woken parked claim; a claim that fails is answered, not lost."""
        try:
            await self._serve(lw, parked.max_jobs, parked.deadline)
        except Exception as exc:  # noqa: BLE001 - the worker is told; it claims again
            log.warning("parked claim of %s failed: %s", lw.worker_id, exc)
            lw.conn.send(wire("no_job_available", worker_id=lw.worker_id, reason="claim failed"))

    async def submit(
        self, sub: JobSubmission, spec: JobSpec, job_id: str, lw: LocalWorker
    ) -> tuple[SubmitResult, bool]:
        """Queue a job submitted here and claim it for `lw`, parked, in the same call.

        `lw` asked for a job; it gets this one only if this is the best job it may run
        (else it claims as usual, which gives it the better one). Returns the submission's
        result and whether `lw` was given the job.
        """
        parked = lw.unpark()
        assert parked is not None
        assignment: Assignment | None = None
        try:
            async with lw.claim_lock:
                lw.claiming, lw.missed = True, False
                try:
                    result, assignment = await self.broker.submit_and_claim(
                        sub, job_id, lw.worker_id, lw.caps, lw.state, spec=spec
                    )
                finally:
                    lw.claiming = False
                if assignment is not None:
                    self.give(lw, [assignment])
        finally:
            if assignment is None:
                # Still waiting: the caller offers the job as queued (which wakes it, if
                # it is still the best worker for it).
                self._repark(lw, parked)
        return result, assignment is not None

    async def _reconcile(self, lw: LocalWorker) -> None:
        """After a claim failed mid-call: once Redis answers, hand back every job it may
        have assigned to `lw` without `lw` being told (`Broker.release_unseen`)."""
        delay = 0.2
        while self.registry.local.get(lw.worker_id) is lw:
            try:
                async with lw.claim_lock:
                    back = await self.broker.release_unseen(
                        lw.worker_id, list(lw.held), "claim reply lost; back in line"
                    )
            except (RedisError, OSError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if back:
                log.info(
                    "jobs %s claimed for %s with the reply lost: back in line", back, lw.worker_id
                )
            return

    # ------------------------------------------------------------------ tasks

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)

    async def close(self) -> None:
        """Cancel and await the claims being served (the hub is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _settled(after: asyncio.Future[Any] | None) -> None:
    """Until `after` is done, whatever its outcome (its own awaiter handles that)."""
    if after is not None and not after.done():
        await asyncio.wait([after])
