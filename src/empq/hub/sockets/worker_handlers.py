"""What the hub does with each worker → hub message of CONTRACT §4."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from empq import errors
from empq.hub.connections import Connection
from empq.hub.departures import worker_gone
from empq.hub.fleet import record_run
from empq.hub.registry import LocalWorker, dumps
from empq.hub.sockets import identity
from empq.models import WorkerCapabilities
from empq.protocol import (
    ClaimJob,
    ClaimNext,
    CompleteJob,
    Disconnect,
    FailJob,
    JobAcceptedByWorker,
    ProtocolError,
    RegisterWorker,
    ReleaseJob,
    UpdateCapabilities,
    UpdateJobProgress,
    WorkerHeartbeat,
    WorkerStatusMessage,
    error_message,
    now_ms,
    out,
    wire,
)
from empq.status import WorkerStatus

if TYPE_CHECKING:
    from empq.hub.runtime import Hub

log = logging.getLogger("empq.hub.workers")

#: Broker refusals of an outcome: the job is not (or no longer) the worker's.
REFUSED = (errors.StaleClaim, errors.InvalidTransition, errors.JobNotFound)


def registered(conn: Connection) -> LocalWorker:
    """The worker registered on this connection, or a protocol error."""
    if conn.worker is None:
        raise ProtocolError("NOT_REGISTERED", "send register_worker before this message")
    return conn.worker


async def register_worker(hub: Hub, conn: Connection, msg: RegisterWorker) -> None:
    try:
        identity.check_token(hub, msg)
        identity.check_identity(hub, conn, msg.worker_id)
    except identity.Refused as refused:
        conn.send(error_message(refused.code, refused.message, worker_id=msg.worker_id))
        log.warning("worker %s refused: %s", msg.worker_id, refused.message)
        if refused.close:
            conn.close()
        return
    lw = await hub.registry.register(
        conn, msg.worker_id, msg.capabilities, msg.status, msg.models_loaded
    )
    conn.worker = lw
    await identity.settle_jobs(hub, lw, msg.current_jobs)
    conn.send(
        out(
            "worker_registered",
            worker_id=msg.worker_id,
            status=lw.sync_info().status,
            assigned_connection_id=conn.id,
            hub_http_url=hub.http_url,
            heartbeat_timeout=hub.settings.heartbeat_timeout,
            claim_wait_max=hub.settings.claim_wait_max,
        )
    )
    await hub.broker.publish("worker_registered", dumps(lw.sync_info()))
    log.info("worker %s registered", msg.worker_id, extra={"worker_id": msg.worker_id})


async def claim_job(hub: Hub, conn: Connection, msg: ClaimJob) -> None:
    lw = registered(conn)
    lw.offered_at = 0.0
    await hub.claims.claim(lw, msg.max_jobs, msg.wait_seconds)


def gpus_of(lw: LocalWorker) -> int:
    """The GPUs a worker's jobs are billed for: its `hardware.gpu_count`, else 1."""
    count = getattr(lw.info.capabilities.hardware, "gpu_count", 1)
    return count if isinstance(count, int) and count >= 1 else 1


async def _claim_next(hub: Hub, lw: LocalWorker, claim_next: ClaimNext | None) -> None:
    """The claim a `complete_job`, `fail_job` or `release_job` carried: after its ack."""
    if claim_next is not None:
        await hub.claims.claim(lw, claim_next.max_jobs, claim_next.wait_seconds)


async def job_accepted(hub: Hub, conn: Connection, msg: JobAcceptedByWorker) -> None:
    registered(conn)
    await hub.broker.accept(msg.job_id, msg.claim_token)


async def update_progress(hub: Hub, conn: Connection, msg: UpdateJobProgress) -> None:
    registered(conn)
    text = msg.message
    if text is None and msg.current_step is not None:
        text = f"step {msg.current_step}" + (f"/{msg.total_steps}" if msg.total_steps else "")
    await hub.broker.progress(msg.job_id, msg.claim_token, msg.progress, text)


def _settled(hub: Hub, lw: LocalWorker, job_id: str) -> None:
    """An outcome or a hand-back: the job no longer holds one of the worker's slots.

    Its parked claim, if any, is answered, since its slots changed (even if the job's
    event, read first, already ended the hold).
    """
    hub.registry.release(job_id)
    hub.claims.end_parked(lw, "a slot was freed")


async def _refused(
    hub: Hub,
    conn: Connection,
    lw: LocalWorker,
    msg: FailJob | ReleaseJob,
    exc: errors.EmpqError,
) -> None:
    """An outcome the broker refused (the job is no longer the worker's): the worker's
    slot is free all the same, so the claim it carried is answered after the `error`."""
    conn.send(error_message(exc.code, exc.message, exc.details, job_id=msg.job_id))
    _settled(hub, lw, msg.job_id)
    await _claim_next(hub, lw, msg.claim_next)


async def complete_job(hub: Hub, conn: Connection, msg: CompleteJob) -> None:
    lw = registered(conn)
    cn = msg.claim_next
    run = lw.run_time(msg.job_id)  # read before the slot is freed below
    done = asyncio.ensure_future(
        hub.broker.complete(
            msg.job_id, msg.claim_token, msg.result, msg.processing_time, gpus=gpus_of(lw)
        )
    )
    claim: asyncio.Future[None] | None = None
    if cn is not None:
        # The GPU waits for this: the next claim goes to Redis beside the completion, in
        # the same round trip. The worker's slot is free whatever Redis answers (done,
        # or refused because the job is no longer its), and the claim's answer is sent
        # after the ack (or the refusal).
        _settled(hub, lw, msg.job_id)
        claim = asyncio.ensure_future(
            hub.claims.claim(lw, cn.max_jobs, cn.wait_seconds, after=done)
        )
    try:
        await done
    except REFUSED as exc:
        if claim is None:
            raise
        conn.send(error_message(exc.code, exc.message, exc.details, job_id=msg.job_id))
    except BaseException:
        if claim is not None:
            await asyncio.wait([claim])  # its job, if it got one, is told before the error
            if not claim.cancelled():
                claim.exception()  # most likely the same outage: the one raised says it
        raise
    else:
        _settled(hub, lw, msg.job_id)
        lw.info.jobs_completed += 1
        if run is not None:
            record_run(lw.info, *run)
        conn.send(wire("job_completed_ack", job_id=msg.job_id, worker_id=lw.worker_id))
    if claim is not None:
        await claim


async def fail_job(hub: Hub, conn: Connection, msg: FailJob) -> None:
    lw = registered(conn)
    try:
        result = await hub.broker.fail(
            msg.job_id,
            msg.claim_token,
            msg.error,
            retry=msg.retry,
            error_details=msg.error_details,
            gpus=gpus_of(lw),
        )
    except REFUSED as exc:
        if msg.claim_next is None:
            raise
        await _refused(hub, conn, lw, msg, exc)
        return
    _settled(hub, lw, msg.job_id)
    lw.info.jobs_failed += 1
    conn.send(
        out(
            "job_failed_ack",
            job_id=msg.job_id,
            worker_id=lw.worker_id,
            retry_scheduled=result.retry_scheduled,
            retry_delay=result.retry_delay,
        )
    )
    await _claim_next(hub, lw, msg.claim_next)


async def release_job(hub: Hub, conn: Connection, msg: ReleaseJob) -> None:
    """A hand-back: the job goes back to its place in the queue, no attempt counted."""
    lw = registered(conn)
    reason = msg.reason or "handed back by its worker"
    try:
        await hub.broker.release(msg.job_id, msg.claim_token, reason)
    except REFUSED as exc:
        if msg.claim_next is None:
            raise
        await _refused(hub, conn, lw, msg, exc)
        return
    _settled(hub, lw, msg.job_id)
    conn.send(wire("job_released_ack", job_id=msg.job_id, worker_id=lw.worker_id))
    log.info(
        "job %s handed back by %s: %s",
        msg.job_id,
        lw.worker_id,
        reason,
        extra={"job_id": msg.job_id, "worker_id": lw.worker_id},
    )
    await _claim_next(hub, lw, msg.claim_next)


async def heartbeat(hub: Hub, conn: Connection, msg: WorkerHeartbeat) -> None:
    lw = registered(conn)
    await hub.registry.heartbeat(
        lw, msg.status, msg.system_info, msg.connector_status, msg.models_loaded
    )
    conn.send(
        out(
            "worker_heartbeat_ack",
            worker_id=lw.worker_id,
            next_heartbeat_expected=now_ms() + int(hub.settings.heartbeat_timeout * 1000),
        )
    )


async def worker_status(hub: Hub, conn: Connection, msg: WorkerStatusMessage) -> None:
    lw = registered(conn)
    lw.info.status = lw.reported(msg.status)
    if msg.models_loaded is not None:
        lw.info.models_loaded = msg.models_loaded
    if msg.capabilities is not None:
        lw.set_capabilities(msg.capabilities)
        hub.claims.end_parked(lw, "capabilities changed")
    elif msg.status in (WorkerStatus.DRAINING, WorkerStatus.OFFLINE):
        hub.claims.end_parked(lw, f"worker is {msg.status.value}")
    await hub.registry.save(lw)
    data = dumps(lw.sync_info())
    if msg.available_slots is not None:
        data["available_slots"] = msg.available_slots
    await hub.broker.publish("worker_status", data)


def merged_capabilities(current: WorkerCapabilities, changes: dict[str, Any]) -> WorkerCapabilities:
    """`update_capabilities`: each named top-level key replaced, the rest kept."""
    merged = current.model_dump()
    merged.update(changes)
    try:
        return WorkerCapabilities.model_validate(merged)
    except PydanticValidationError as exc:
        details = [
            {"field": "capability_changes." + ".".join(map(str, e["loc"])), "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        fields = ", ".join(d["field"] for d in details)
        raise ProtocolError(
            "VALIDATION_ERROR", f"bad capability_changes: {fields}", details
        ) from exc


async def update_capabilities(hub: Hub, conn: Connection, msg: UpdateCapabilities) -> None:
    lw = registered(conn)
    lw.set_capabilities(merged_capabilities(lw.caps, msg.capability_changes))
    hub.claims.end_parked(lw, "capabilities changed")
    await hub.registry.save(lw)
    await hub.broker.publish("worker_status", dumps(lw.sync_info()))


async def disconnect(hub: Hub, conn: Connection, msg: Disconnect) -> None:
    """A graceful goodbye: the worker's jobs are handed back (no attempt counted)."""
    lw = registered(conn)
    lw.unpark()
    reason = msg.reason or "worker disconnected"
    await worker_gone(hub.broker, hub.registry, lw.worker_id, reason, handed_back=True)
    conn.worker = None
