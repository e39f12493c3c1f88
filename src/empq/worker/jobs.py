"""Running one assigned job: accept, progress, then exactly one outcome, all under its claim."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_core import PydanticSerializationError

from empq import telemetry
from empq.connectors.base import Connector, JobContext
from empq.errors import ConnectorError
from empq.protocol import (
    ClaimNext,
    CompleteJob,
    FailJob,
    JobAcceptedByWorker,
    ReleaseJob,
    UpdateJobProgress,
)
from empq.worker.handback import hands_back, release_message
from empq.worker.link import HubLink
from empq.worker.messages import JobAssigned
from empq.worker.metrics import FinishedJob, WorkerMetrics

log = logging.getLogger(__name__)

#: Progress messages per job are sent at most this often; the latest value wins.
PROGRESS_INTERVAL = 0.2

CancelReason = Literal["cancelled", "shutdown"]


@dataclass(slots=True)
class ActiveJob:
    """A job this worker holds, with the latest progress its connector reported."""

    assignment: JobAssigned
    context: JobContext
    connector: Connector
    started: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None
    progress: float = 0.0
    message: str | None = None
    current_step: str | int | None = None
    total_steps: int | None = None
    unsent: bool = False
    accepted: bool = False
    finished: bool = False
    last_sent: float = 0.0
    cancel_reason: CancelReason | None = None

    @property
    def job_id(self) -> str:
        return self.assignment.job_id

    def progress_message(self, worker_id: str) -> UpdateJobProgress:
        """The `update_job_progress` carrying the latest report."""
        return UpdateJobProgress(
            type="update_job_progress",
            job_id=self.job_id,
            claim_token=self.assignment.claim_token,
            progress=max(0.0, min(100.0, self.progress)),
            status="in_progress",
            message=self.message,
            current_step=self.current_step,
            total_steps=self.total_steps,
            worker_id=worker_id,
        )


class JobExecutor:
    """Runs jobs through connectors and reports them to the hub over `link`."""

    def __init__(
        self,
        worker_id: str,
        link: HubLink,
        metrics: WorkerMetrics,
        next_claim: Callable[[str], ClaimNext | None] | None = None,
        on_service_down: Callable[[Connector, str], Awaitable[None]] | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.link = link
        self.metrics = metrics
        #: The claim an outcome carries (`claim_next`), given the id of the job ending.
        self.next_claim = next_claim
        #: Told when a job found its service down (health-gated claiming).
        self.on_service_down = on_service_down
        #: Reports the connectors' warm models, if changed, before an outcome goes out.
        self.warmth: Callable[[], Awaitable[None]] | None = None

    async def ensure_accepted(self, job: ActiveJob) -> None:
        """Send `job_accepted_by_worker` once (it must precede progress).

        Deferred rather than sent on assignment: a job that ends within
        PROGRESS_INTERVAL goes straight from `assigned` to its outcome (the contract
        allows it), which saves a message and a broker write per fast job.
        """
        if job.accepted or job.finished or job.cancel_reason is not None:
            return
        a = job.assignment
        job.accepted = await self.link.send(
            JobAcceptedByWorker(
                type="job_accepted_by_worker",
                job_id=a.job_id,
                claim_token=a.claim_token,
                worker_id=self.worker_id,
            )
        )

    async def flush_progress(self, job: ActiveJob) -> None:
        """Send the job's latest progress if it has not gone out yet."""
        await self.ensure_accepted(job)
        if job.unsent and not job.finished and job.cancel_reason is None:
            job.unsent = False
            job.last_sent = time.monotonic()
            await self.link.send(job.progress_message(self.worker_id))

    def reporter(self, job: ActiveJob) -> Any:
        """The `progress` callback handed to the connector for this job only."""

        async def report(
            progress: float,
            message: str | None = None,
            *,
            current_step: str | int | None = None,
            total_steps: int | None = None,
        ) -> None:
            job.progress, job.message = float(progress), message
            job.current_step, job.total_steps = current_step, total_steps
            job.unsent = True
            # Leading edge goes out at once; later ones wait for the periodic flush.
            if time.monotonic() - job.last_sent >= PROGRESS_INTERVAL:
                await self.flush_progress(job)

        return report

    async def run(self, job: ActiveJob) -> None:
        """Accept, process, and report the outcome; never raises for a job's own failure."""
        a = job.assignment
        outcome: CompleteJob | FailJob | ReleaseJob | None
        label = "failed"
        error: str | None = None
        try:
            with telemetry.span(f"connector {job.connector.name}"):
                result = await job.connector.process(job.context, self.reporter(job))
            outcome = self._complete(job, result)
            label = "completed"
        except ConnectorError as exc:
            error = exc.message
            if hands_back(exc, job.context.service_started):
                # The service never had the job: give it back, no attempt spent.
                outcome, label = self._release(job, exc.message), "released"
                log.info("job %s handed back: %s", a.job_id, exc.message)
                if self.on_service_down is not None:
                    await self.on_service_down(job.connector, exc.message)
            else:
                outcome = self._fail(job, exc.message, exc.error_type, exc.retryable, exc.details)
        except asyncio.CancelledError:
            if job.cancel_reason is None:
                raise  # the worker itself is being torn down
            # Cancelled by the hub: already final there, nothing to report. Cut off
            # by shutdown: handed back, no attempt spent.
            outcome, label = None, job.cancel_reason
            if job.cancel_reason == "shutdown":
                outcome = self._release(job, "worker shutting down")
        except Exception as exc:  # a connector bug must not kill the worker
            log.exception("connector %s crashed on job %s", job.connector.name, a.job_id)
            error = f"{type(exc).__name__}: {exc}"
            outcome = self._fail(job, f"connector crashed: {error}", "connector_crashed", True)
        job.finished = True  # no accept or progress may follow the outcome
        seconds = time.monotonic() - job.started
        if outcome is not None:
            if isinstance(outcome, CompleteJob):
                outcome.processing_time = seconds
            claim_next = None if self.next_claim is None else self.next_claim(a.job_id)
            outcome.claim_next = claim_next
            # Shielded: the outcome must be recorded even if shutdown cancels us now.
            try:
                text = outcome.dump()
            except PydanticSerializationError as exc:
                refused = self._fail(job, f"result is not JSON: {exc}", "invalid_result", False)
                refused.claim_next = claim_next
                text = refused.dump()
                label = "failed"
            if label == "failed":
                _log_failure(a.job_id, a.job_type, text)
            await asyncio.shield(self._deliver(a.job_id, text))
        self.metrics.finished(FinishedJob(a.job_id, a.job_type, label, seconds, time.time(), error))

    def _release(self, job: ActiveJob, reason: str) -> ReleaseJob:
        return release_message(job.assignment, self.worker_id, reason)

    async def _deliver(self, job_id: str, text: str) -> None:
        """The warm models first, if they changed (the hub routes by them), then the outcome."""
        if self.warmth is not None:
            await self.warmth()
        await self.link.send_outcome(job_id, text)

    def _complete(self, job: ActiveJob, result: Any) -> CompleteJob | FailJob:
        if not isinstance(result, dict):
            problem = f"connector returned {type(result).__name__}, not a dict"
            return self._fail(job, problem, "invalid_result", False)
        return CompleteJob(
            type="complete_job",
            job_id=job.job_id,
            claim_token=job.assignment.claim_token,
            result=result,
            worker_id=self.worker_id,
        )

    def _fail(
        self, job: ActiveJob, error: str, error_type: str, retry: bool, details: Any = None
    ) -> FailJob:
        info: dict[str, Any] = {"error_type": error_type, "retryable": retry}
        if details is not None:
            info["details"] = details
        info["connector"] = job.connector.name
        return FailJob(
            type="fail_job",
            job_id=job.job_id,
            claim_token=job.assignment.claim_token,
            error=error,
            retry=retry,
            error_details=info,
            worker_id=self.worker_id,
        )


def _log_failure(job_id: str, job_type: str, text: str) -> None:
    """One INFO line per failed attempt: the job, what kind of error, whether it retries."""
    try:
        msg = FailJob.model_validate_json(text)
    except ValueError:
        return
    error_type = (msg.error_details or {}).get("error_type", "unknown")
    retry = "retryable" if msg.retry else "will not retry"
    log.info(
        "job %s (%s) failed: %s (%s, %s)",
        job_id,
        job_type,
        msg.error,
        error_type,
        retry,
        extra={"job_id": job_id},
    )
