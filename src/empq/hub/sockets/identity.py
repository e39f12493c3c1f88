"""Who may register as which worker (docs/security.md, "Worker identity").

- With `EMPQ_WORKER_TOKENS` set, `register_worker` must carry a token of the list,
  and a token bound to ids (`TOKEN:worker=gpu-*`) registers only those ids.
- A worker id held by a live connection to this hub cannot be registered by another
  connection: that would hand the impostor the worker's jobs, its `cancel_job`s and
  its `disconnect`. Once the old connection is gone (closed, or dropped by the
  heartbeat monitor) the id is free again: that is the reconnect path, and a worker
  refused because the hub has not yet noticed its old socket die retries.
- A registration settles every job the id still holds at once (settle.lua): those it
  lists as current stay held, every other is requeued as a lost attempt.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from empq import errors
from empq.credentials import matching as matching_tokens
from empq.credentials import parse_worker_tokens
from empq.matching import JobSpec, RunningJob
from empq.protocol import ProtocolError, RegisterWorker

if TYPE_CHECKING:
    from empq.hub.connections import Connection
    from empq.hub.registry import LocalWorker
    from empq.hub.runtime import Hub

log = logging.getLogger("empq.hub.workers")


class Refused(ProtocolError):
    """A registration refused; `close` says whether the socket is closed after the error."""

    def __init__(self, code: str, message: str, *, close: bool) -> None:
        super().__init__(code, message)
        self.close = close


def check_token(hub: Hub, msg: RegisterWorker) -> None:
    """`Refused` unless the registration's token (if tokens are set) admits its id."""
    entries = hub.settings.worker_tokens
    if not entries:
        return
    found = matching_tokens(msg.auth_token, parse_worker_tokens(entries))
    if not found:
        raise Refused("AUTH_FAILED", "worker token not accepted", close=True)
    if not any(t.allows(msg.worker_id) for t in found):
        raise Refused(
            "AUTH_FAILED",
            f"this worker token may not register worker id '{msg.worker_id}'",
            close=True,
        )


def check_identity(hub: Hub, conn: Connection, worker_id: str) -> None:
    """`Refused` if this socket is another worker, or a live socket holds `worker_id`."""
    mine = conn.worker
    if mine is not None and mine.worker_id != worker_id:
        raise Refused(
            "ALREADY_REGISTERED",
            f"this connection is registered as worker '{mine.worker_id}'; "
            "open another connection for another worker",
            close=False,
        )
    holder = hub.registry.local.get(worker_id)
    if holder is not None and holder.conn is not conn and not holder.conn.closing:
        raise Refused(
            "WORKER_ID_IN_USE",
            f"worker id '{worker_id}' is held by another live connection; "
            "use another id, or register again once that connection is gone",
            close=False,
        )


async def settle_jobs(hub: Hub, lw: LocalWorker, current: list[str]) -> list[str]:
    """Settle the jobs the id holds (see the module docstring); returns those requeued."""
    # Events up to this point are older than what the settle sees: they never end the
    # holds made from it.
    seen = await hub.broker.last_event_id() if current or lw.held else None
    kept, requeued = await hub.broker.settle_registration(
        lw.worker_id, current, "worker registered again without this job (lost attempt)"
    )
    keep = set(kept)
    for job_id in [j for j in lw.held if j not in keep]:
        hub.registry.release(job_id)
    for job_id in kept:
        if job_id in lw.held:
            continue
        try:
            job = await hub.broker.get(job_id)
        except errors.JobNotFound:
            continue
        running = RunningJob(
            job.customer_id,
            job.requirements.customer_isolation,
            job.requirements.hardware.gpu_memory_gb,
        )
        spec = JobSpec.of(job.type, job.customer_id, job.requirements)
        hub.registry.hold(lw, job_id, running, seen, spec.signature)
    if requeued:
        log.info(
            "worker %s registered again; requeued %s it no longer holds",
            lw.worker_id,
            requeued,
            extra={"worker_id": lw.worker_id},
        )
    return requeued
