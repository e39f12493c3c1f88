"""Typed replies the SDK returns besides `Job` and `WorkerInfo`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from empq.errors import EmpqError
from empq.models import Job
from empq.status import JobStatus


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of `GET /api/jobs`: iterate it for the jobs; `next_cursor` fetches more."""

    jobs: list[Job] = field(default_factory=list)
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[Job]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)


class RejectedWorker(BaseModel):
    """A worker that cannot run the job, and every reason why."""

    model_config = ConfigDict(extra="allow")

    worker_id: str
    reasons: list[str] = Field(default_factory=list)


class Explanation(BaseModel):
    """`GET /api/jobs/{id}/explain`: why a job is (not) running and where it stands."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    status: JobStatus
    position: int | None = None
    matching_workers: list[Any] = Field(default_factory=list)
    rejected_workers: list[RejectedWorker] = Field(default_factory=list)
    summary: str = ""


class Match(BaseModel):
    """`POST /api/match`: what submitting a job now would give (nothing is stored)."""

    model_config = ConfigDict(extra="allow")

    position: int
    eta_seconds: float | None = None
    eta_reason: str | None = None
    matching_workers: list[Any] = Field(default_factory=list)
    rejected_workers: list[RejectedWorker] = Field(default_factory=list)
    warnings: list[Any] = Field(default_factory=list)


class WaitTimeout(EmpqError, TimeoutError):
    """`wait(job_id, timeout=...)` ran out of time; `.job` is the last snapshot seen."""

    code = "WAIT_TIMEOUT"

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(
            f"job '{job.id}' still {job.status.value} after {timeout:g}s", details=None
        )
        self.job = job
        self.job_id = job.id


class SubmittedJob(Job):
    """The `Job` a submit created, plus the hub's `warnings` (e.g. no worker can run it)."""

    warnings: list[Any] = Field(default_factory=list)
