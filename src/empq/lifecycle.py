"""What happened to each job, told once by the process that made it happen.

The broker calls a `JobObserver` right after each state change it applied (its
script succeeded): submitted, assigned, accepted, completed, failed, requeued,
cancelled, retried, promoted. Every hub sees every change through the event stream,
but only the process whose call applied a change is told of it here, so a change is
logged and counted once however many hubs share the Redis.

`JobObserver` does nothing; `empq.hub.lifecycle.HubLifecycle` logs each change
(logger `empq.jobs`, INFO, one line with `job_id`, `job_type`, `worker_id`,
`attempt` and `duration` as structured fields) and counts it in the hub's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from empq.broker.base import Assignment, FailResult, SubmitResult
    from empq.models import Job, JobSubmission
    from empq.status import JobStatus


class JobObserver:
    """Told of each job state change this process applied; the base does nothing.

    The calls are awaited by the broker before it returns, so they must be quick:
    an observer may read the job from Redis only for what it does not know already.
    """

    async def submitted(
        self, results: Sequence[SubmitResult], subs: Sequence[JobSubmission]
    ) -> None:
        """Jobs were queued (`results[i].created` is false for an idempotent resubmit)."""

    async def assigned(self, worker_id: str, assignments: Sequence[Assignment]) -> None:
        """Jobs were claimed for a worker."""

    async def accepted(self, job_id: str, token: str) -> None:
        """The worker holding `token` accepted the job."""

    async def completed(self, job_id: str, token: str, processing_time: float | None) -> None:
        """The job completed."""

    async def failed(
        self, job_id: str, token: str, result: FailResult, status: JobStatus, error: str
    ) -> None:
        """An attempt failed or timed out (`result.retry_scheduled`: it will run again)."""

    async def requeued(
        self, job_id: str, token: str, reason: str, outcome: str, *, counted: bool
    ) -> None:
        """The job was taken back from its worker: `outcome` is `queued` or `failed`
        (no retries left); `counted` false for a hand-back (no attempt counted)."""

    async def cancelled(self, job: Job, worker_id: str | None) -> None:
        """An operator cancelled the job (`worker_id`: who was running it)."""

    async def retried(self, job: Job) -> None:
        """An operator queued a final job again."""

    async def promoted(self, job_ids: Sequence[str]) -> None:
        """Delayed retries whose back-off ended were queued again."""


NULL_OBSERVER = JobObserver()
