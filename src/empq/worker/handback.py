"""Hand-backs (CONTRACT §9): giving a job back without spending one of its attempts.

A job goes back with `release_job` (the hub puts it at its place in the queue,
`attempts` unchanged) when the worker could not start it:

- its connector failed with `service_unavailable` *before the service started the
  job* (the connector had not called `job.mark_started()`): the service is down, not
  the job at fault. The service is marked down at once, so the worker stops
  claiming its jobs until its health check passes again;
- the worker is shutting down and the job outlived the drain's grace.

A failure after the service started the job is an attempt, as any other failure.
This module also holds what the worker does when a service's health changes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from empq.errors import ConnectorError
from empq.protocol import ReleaseJob, WorkerHeartbeat
from empq.worker.capabilities import system_info
from empq.worker.health import ServiceState
from empq.worker.messages import JobAssigned

if TYPE_CHECKING:
    from empq.worker.runtime import Worker

log = logging.getLogger("empq.worker")


def hands_back(exc: ConnectorError, started: bool) -> bool:
    """Whether a connector failure is a hand-back rather than a failed attempt."""
    return exc.error_type == "service_unavailable" and not started


def release_message(a: JobAssigned, worker_id: str, reason: str) -> ReleaseJob:
    """The `release_job` for an assignment."""
    return ReleaseJob(
        type="release_job",
        job_id=a.job_id,
        claim_token=a.claim_token,
        reason=reason[:1000],
        worker_id=worker_id,
    )


async def service_changed(worker: Worker, state: ServiceState) -> None:
    """A service went down or came back: adjust claiming and tell the hub now."""
    worker.metrics.connector_healthy.labels(state.name).set(1 if state.reachable else 0)
    # Services of connectors still up are offered; a down one's are withdrawn (with
    # every connector down the worker simply claims nothing, see `Worker.slots`).
    await worker.refresh_capabilities(ask=state.reachable)
    await worker.link.send(
        WorkerHeartbeat(
            type="worker_heartbeat",
            worker_id=worker.worker_id,
            status=worker.status,
            current_jobs=worker.held_jobs(),
            system_info=system_info(),
            connector_status=worker.health.status(),
        )
    )
    if state.reachable:
        worker.claim_wanted.set()
