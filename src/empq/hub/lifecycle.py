"""`HubLifecycle`: the hub's log line and counters for each job change it applied.

One INFO line per change on the logger `empq.jobs`, e.g.::

    job 3f2a... completed: text_to_image on gpu-1, attempt 1, 2.31 s

with the fields `event` (`job_submitted`, `job_assigned`, `job_accepted`,
`job_completed`, `job_failed`, `job_timeout`, `job_retry_scheduled`, `job_requeued`,
`job_handed_back`, `job_cancelled`, `job_retried`, `job_promoted`), `job_id`,
`job_type`, `worker_id`, `attempt` (1 for the first run) and `duration` (seconds: the
queue wait for `job_assigned`, the run for the ends of a run), which
`EMPQ_LOG_FORMAT=json` writes as fields of the record. `grep job_id` through the logs
of every hub then tells the whole story of a job, each change once.

What a job is (its type, its worker, when it was assigned) is remembered from its
assignment in this process; a job assigned elsewhere (another hub, before a restart)
is read from Redis once when it ends here.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from empq import telemetry
from empq.lifecycle import JobObserver
from empq.status import JobStatus

if TYPE_CHECKING:
    from empq.broker import Assignment, Broker, FailResult, SubmitResult
    from empq.hub.metrics import HubMetrics
    from empq.models import Job, JobSubmission

log = logging.getLogger("empq.jobs")

#: Jobs in flight remembered per hub; past it the oldest are read back when they end.
MAX_HELD = 100_000

_CAUSES = {
    "assignment was not accepted in time": "not_accepted",
}


@dataclass(slots=True)
class _Held:
    job_type: str
    worker_id: str | None
    attempt: int
    assigned_ms: int
    started_ms: int | None = None
    traceparent: str | None = None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _logging() -> bool:
    """Whether lifecycle lines are logged at all (their text is built only then)."""
    return log.isEnabledFor(logging.INFO)


class HubLifecycle(JobObserver):
    """Logs and counts each job change this hub's broker applied."""

    def __init__(self, broker: Broker, metrics: HubMetrics) -> None:
        self.broker = broker
        self.metrics = metrics
        self._held: OrderedDict[str, _Held] = OrderedDict()

    # ---------------------------------------------------------------- helpers

    def _emit(
        self,
        event: str,
        job_id: str,
        text: str,
        *,
        job_type: str | None,
        worker_id: str | None = None,
        attempt: int | None = None,
        duration: float | None = None,
        level: int = logging.INFO,
        **more: Any,
    ) -> None:
        if not log.isEnabledFor(level):
            return
        log.log(
            level,
            "job %s %s",
            job_id,
            text,
            extra={
                "event": event,
                "job_id": job_id,
                "job_type": job_type,
                "worker_id": worker_id,
                "attempt": attempt,
                "duration": None if duration is None else round(duration, 3),
                **more,
            },
        )

    def _hold(self, job_id: str, held: _Held) -> None:
        self._held[job_id] = held
        if len(self._held) > MAX_HELD:
            self._held.popitem(last=False)

    async def _lookup(self, job_id: str, *, keep: bool = False) -> _Held:
        held = self._held.get(job_id) if keep else self._held.pop(job_id, None)
        if held is not None:
            return held
        raw = await self.broker.redis.hmget(
            self.broker.keys.job(job_id),
            ["type", "worker_id", "attempts", "assigned_at", "started_at", "traceparent"],
        )
        values = [v.decode() if isinstance(v, bytes) else v for v in raw]
        jtype, worker, attempts, assigned, started, traceparent = values
        held = _Held(
            jtype or "unknown",
            worker,
            _int(attempts) + 1,
            _int(assigned) or self.broker.clock(),
            _int(started) or None,
            traceparent,
        )
        if keep:
            self._hold(job_id, held)
        return held

    def _run_seconds(self, held: _Held) -> float:
        return max(0.0, (self.broker.clock() - (held.started_ms or held.assigned_ms)) / 1000)

    # ---------------------------------------------------------------- changes

    async def submitted(
        self, results: Sequence[SubmitResult], subs: Sequence[JobSubmission]
    ) -> None:
        for result, sub in zip(results, subs, strict=False):
            if not result.created:
                continue
            self.metrics.job_submitted(sub.type)
            if not _logging():
                continue
            self._emit(
                "job_submitted",
                result.job_id,
                f"submitted: {sub.type}, priority {sub.priority}, position {result.position}",
                job_type=sub.type,
                attempt=0,
                priority=sub.priority,
                customer_id=sub.customer_id,
            )

    async def assigned(self, worker_id: str, assignments: Sequence[Assignment]) -> None:
        now = self.broker.clock()
        for a in assignments:
            f = a.fields
            jtype = f.get("type") or "unknown"
            attempt = _int(f.get("attempts")) + 1
            assigned = _int(f.get("assigned_at")) or now
            # A retry waits from when it was queued again (the end of its back-off).
            since = max(_int(f.get("created_at")), _int(f.get("retry_at"))) or assigned
            wait = max(0.0, (assigned - since) / 1000)
            traceparent = f.get("traceparent")
            self._hold(a.job_id, _Held(jtype, worker_id, attempt, assigned, None, traceparent))
            self.metrics.job_assigned(jtype, wait)
            if traceparent and telemetry.enabled():
                telemetry.record(
                    "empq.claim",
                    parent=traceparent,
                    start_ms=since,
                    end_ms=assigned,
                    attributes={
                        "empq.job.id": a.job_id,
                        "empq.job.type": jtype,
                        "empq.worker.id": worker_id,
                        "empq.job.attempt": attempt,
                    },
                )
            if not _logging():
                continue
            self._emit(
                "job_assigned",
                a.job_id,
                f"assigned: {jtype} to {worker_id}, attempt {attempt}, waited {wait:.3f} s",
                job_type=jtype,
                worker_id=worker_id,
                attempt=attempt,
                duration=wait,
            )

    async def accepted(self, job_id: str, token: str) -> None:
        held = await self._lookup(job_id, keep=True)
        held.started_ms = self.broker.clock()
        self._emit(
            "job_accepted",
            job_id,
            f"accepted by {held.worker_id}",
            job_type=held.job_type,
            worker_id=held.worker_id,
            attempt=held.attempt,
            level=logging.DEBUG,
        )

    async def completed(self, job_id: str, token: str, processing_time: float | None) -> None:
        held = await self._lookup(job_id)
        run = processing_time if processing_time is not None else self._run_seconds(held)
        self.metrics.job_ended(held.job_type, "completed", run)
        if held.traceparent and telemetry.enabled():
            telemetry.record(
                "empq.complete",
                parent=held.traceparent,
                attributes={"empq.job.id": job_id, "empq.job.run_seconds": run},
            )
        if not _logging():
            return
        self._emit(
            "job_completed",
            job_id,
            f"completed: {held.job_type} on {held.worker_id}, attempt {held.attempt}, {run:.3f} s",
            job_type=held.job_type,
            worker_id=held.worker_id,
            attempt=held.attempt,
            duration=run,
        )

    async def failed(
        self, job_id: str, token: str, result: FailResult, status: JobStatus, error: str
    ) -> None:
        held = await self._lookup(job_id)
        run = self._run_seconds(held)
        outcome = status.value
        self.metrics.job_run(held.job_type, outcome, run)
        telemetry.record(
            "empq.fail",
            parent=held.traceparent,
            attributes={
                "empq.job.id": job_id,
                "empq.job.status": outcome,
                "empq.job.will_retry": result.retry_scheduled,
            },
            error=error,
        )
        if result.retry_scheduled:
            self.metrics.job_retry(held.job_type, outcome)
            event, what = "job_retry_scheduled", f"{outcome}, retry in {result.retry_delay:g} s"
        else:
            self.metrics.job_finished(held.job_type, outcome)
            event, what = f"job_{outcome}", f"{outcome} (final)"
        self._emit(
            event,
            job_id,
            f"{what}: {held.job_type} on {held.worker_id}, attempt {result.attempts}, "
            f"{run:.3f} s: {error}",
            job_type=held.job_type,
            worker_id=held.worker_id,
            attempt=result.attempts,
            duration=run,
            status=outcome,
            error=error,
            will_retry=result.retry_scheduled,
        )

    async def requeued(
        self, job_id: str, token: str, reason: str, outcome: str, *, counted: bool
    ) -> None:
        held = await self._lookup(job_id)
        run = self._run_seconds(held)
        if not counted:
            self.metrics.job_handed_back(held.job_type)
            event, what = "job_handed_back", "handed back, queued again"
        elif outcome == JobStatus.FAILED:
            self.metrics.job_finished(held.job_type, "failed")
            event, what = "job_failed", "failed (final, no retries left)"
        else:
            self.metrics.job_retry(held.job_type, _CAUSES.get(reason, "worker_lost"))
            event, what = "job_requeued", "queued again"
        self._emit(
            event,
            job_id,
            f"{what}: {held.job_type} from {held.worker_id}, attempt {held.attempt}: {reason}",
            job_type=held.job_type,
            worker_id=held.worker_id,
            attempt=held.attempt,
            duration=run,
            reason=reason,
        )

    async def cancelled(self, job: Job, worker_id: str | None) -> None:
        self._held.pop(job.id, None)
        self.metrics.job_finished(job.type, "cancelled")
        self._emit(
            "job_cancelled",
            job.id,
            f"cancelled: {job.type}" + (f" on {worker_id}" if worker_id else ""),
            job_type=job.type,
            worker_id=worker_id,
            attempt=job.attempts + 1 if worker_id else job.attempts,
            reason=job.message,
        )

    async def retried(self, job: Job) -> None:
        self._emit(
            "job_retried", job.id, f"queued again by an operator: {job.type}", job_type=job.type
        )

    async def promoted(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            self._emit("job_promoted", job_id, "back-off over, queued again", job_type=None)
