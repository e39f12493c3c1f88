"""The job status set and the transitions the broker allows between them."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is in its life; see CONTRACT §2 for the diagram."""

    PENDING = "pending"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class WorkerStatus(StrEnum):
    """What a worker says it is doing."""

    IDLE = "idle"
    BUSY = "busy"
    DRAINING = "draining"
    OFFLINE = "offline"


#: Statuses a job is held by a worker in.
ACTIVE_STATUSES = frozenset({JobStatus.ASSIGNED, JobStatus.ACCEPTED, JobStatus.IN_PROGRESS})

#: Statuses that can be cancelled.
CANCELLABLE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.QUEUED, *ACTIVE_STATUSES})

#: Statuses from which `retry` (a fresh budget) is allowed.
RETRYABLE_STATUSES = frozenset({JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.CANCELLED})

#: `completed` and `cancelled` are always final; `failed` and `timeout` are final
#: only once no retries remain (the broker then leaves them there).
ALWAYS_FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.CANCELLED})

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.QUEUED: frozenset({JobStatus.ASSIGNED, JobStatus.CANCELLED}),
    JobStatus.ASSIGNED: frozenset(
        {
            JobStatus.ACCEPTED,
            JobStatus.IN_PROGRESS,
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.TIMEOUT,
            JobStatus.QUEUED,  # assignment never accepted, or worker lost
            JobStatus.CANCELLED,
        }
    ),
    JobStatus.ACCEPTED: frozenset(
        {
            JobStatus.IN_PROGRESS,
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.TIMEOUT,
            JobStatus.QUEUED,
            JobStatus.CANCELLED,
        }
    ),
    JobStatus.IN_PROGRESS: frozenset(
        {
            JobStatus.IN_PROGRESS,
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.TIMEOUT,
            JobStatus.QUEUED,
            JobStatus.CANCELLED,
        }
    ),
    # A failed or timed-out job waiting for its retry can still be cancelled.
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.TIMEOUT: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED}),  # only by an explicit retry
}


def can_transition(old: JobStatus, new: JobStatus) -> bool:
    """Whether the contract allows a job to move from `old` to `new`."""
    return new in TRANSITIONS[old]


def is_final(status: JobStatus, retry_scheduled: bool = False) -> bool:
    """Whether a job in `status` will never run again without an operator's retry.

    `failed` and `timeout` are final unless a retry is scheduled (the attempt was
    retryable and retries remained).
    """
    if status in ALWAYS_FINAL_STATUSES:
        return True
    if status in (JobStatus.FAILED, JobStatus.TIMEOUT):
        return not retry_scheduled
    return False
