"""What the worker does with the hub's answers about its jobs: acks and refusals.

Kept apart from the session's reader so the rules are in one place:

- an ack settles the job's owed outcome (a `job_failed_ack` also says, at INFO,
  whether the hub will retry the job);
- `UNAVAILABLE` naming an owed job keeps the outcome and sends it again later; a
  claim that cannot be served (a `claim_job`, or the `claim_next` of that outcome)
  counts as answered, so the worker claims again after its back-off instead of
  waiting for an answer that never comes;
- any other `error` naming an owed job is a refusal: nothing left to deliver;
- an `error` meaning a running job is no longer ours stops it at its service;
- `UNAVAILABLE` for a `job_accepted_by_worker` sends the accept again, so a job
  accepted during an outage is not swept back to the queue while it runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from empq.worker.messages import HubError

if TYPE_CHECKING:
    from empq.worker.runtime import Worker

log = logging.getLogger("empq.worker")

ACKS = frozenset({"job_completed_ack", "job_failed_ack", "job_released_ack"})
#: `error_code`s meaning the job is no longer this worker's.
LOST = frozenset({"STALE_CLAIM", "INVALID_TRANSITION", "JOB_NOT_FOUND"})


def acknowledged(worker: Worker, msg: dict[str, Any]) -> None:
    """An ack of an outcome (`ACKS`)."""
    job_id = msg.get("job_id")
    if not isinstance(job_id, str):
        return
    worker.link.settle(job_id)
    if msg.get("type") == "job_failed_ack":
        if msg.get("retry_scheduled"):
            log.info("job %s: the hub retries it in %s s", job_id, msg.get("retry_delay"))
        else:
            log.info("job %s: the hub will not retry it", job_id)


def refused(worker: Worker, err: HubError) -> bool:
    """An `error` about one of our jobs; False if it names none (the caller logs it)."""
    job_id = err.job_id
    if err.error_code == "UNAVAILABLE" and err.message_type == "claim_job":
        _claim_dropped(worker)
        return True
    if err.error_code == "UNAVAILABLE" and err.message_type == "job_accepted_by_worker":
        job = worker.jobs.get(job_id or "")
        if job is not None:
            # Not recorded: send it again (the progress flusher does), or the hub's
            # claim sweep would take the job away from us while we run it.
            job.accepted = False
        return True
    if job_id is None:
        return False
    if job_id in worker.link.owed_jobs:
        if err.error_code == "UNAVAILABLE":
            if worker.link.outbox.carried_claim(job_id):
                _claim_dropped(worker)
            return worker.link.unavailable(job_id)
        # The hub refused an outcome (stale claim, already final): nothing to retry.
        log.warning("hub refused outcome of job %s: %s", job_id, err.error)
        worker.link.settle(job_id)
        return True
    if job_id in worker.jobs and err.error_code in LOST:
        # The job was requeued or ended without us (e.g. after a long disconnect):
        # its result would be refused, so stop spending the GPU on it.
        log.warning("lost the claim on job %s (%s); stopping it", job_id, err.error)
        worker.order_cancel(job_id)
        return True
    return False


def _claim_dropped(worker: Worker) -> None:
    """A claim the hub could not serve (its storage is down): claim again later."""
    # Not woken now: the claimer's back-off poll claims again, so a hub whose
    # storage is down is not asked in a tight loop.
    if worker.session is not None:
        worker.session.claim_dropped()
