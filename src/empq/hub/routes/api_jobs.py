"""REST routes for jobs (CONTRACT §3): submit, batch, get, list, cancel, retry, explain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from empq.broker.core import new_job_id
from empq.credentials import ApiKey
from empq.hub.auth import api_key_of, require_api_key
from empq.hub.explain import explain
from empq.hub.placement import eta, eta_fields
from empq.hub.runtime import Hub
from empq.hub.scoping import list_filter, scoped_submission, take_rate, visible
from empq.matching import JobSpec
from empq.models import BatchSubmission, Job, JobSubmission
from empq.protocol import now_ms
from empq.status import JobStatus

router = APIRouter(prefix="/api/jobs", tags=["jobs"], dependencies=[Depends(require_api_key)])


async def hub_of(request: Request) -> Hub:
    """The running hub behind this app (async, so FastAPI does not hop to a thread)."""
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(hub_of)]
#: The API key the request presented (an operator key when none are configured).
KeyDep = Annotated[ApiKey, Depends(api_key_of)]


def job_json(job: Job) -> dict[str, Any]:
    """A job record as REST returns it (ISO 8601 UTC times)."""
    return job.model_dump(mode="json")


@router.post("", status_code=201, summary="Submit a job")
async def submit(sub: JobSubmission, hub: HubDep, key: KeyDep) -> JSONResponse:
    """Queue one job. 201 for a new job; 200 with the first job for a repeated idempotency key."""
    sub = scoped_submission(key, sub)
    await take_rate(hub.broker, key, 1)
    status, body = await submit_reply(hub, sub)
    return JSONResponse(body, status_code=status)


async def submit_reply(hub: Hub, sub: JobSubmission) -> tuple[int, dict[str, Any]]:
    """Queue one job: the HTTP status and body of the reply (see also `fast_submit`)."""
    spec = JobSpec.of(sub.type, sub.customer_id, sub.requirements)
    result = await hub.dispatcher.submit(sub, spec)
    hub.webhooks.remember_job_url(result.job_id, sub.webhook_url)
    if not result.created:
        job = await hub.broker.get(result.job_id)
        return 200, {"job_id": job.id, **job_json(job)}
    body: dict[str, Any] = {
        "job_id": result.job_id,
        "status": result.status.value,
        "position": result.position,
        "created_at": result.created_at.isoformat(),
    }
    if result.status is JobStatus.QUEUED and result.member is not None:
        body.update(eta_fields(await eta(hub, spec, result.member, result.position)))
    warnings = await hub.warnings_for(spec)
    if warnings:
        body["warnings"] = warnings
    return 201, body


@router.post("/batch", status_code=201, summary="Submit many jobs, all or nothing")
async def submit_batch(batch: BatchSubmission, hub: HubDep, key: KeyDep) -> dict[str, Any]:
    batch = batch.model_copy(update={"jobs": [scoped_submission(key, j) for j in batch.jobs]})
    await take_rate(hub.broker, key, len(batch.jobs))
    started, job_ids = now_ms(), [new_job_id() for _ in batch.jobs]
    hub.dispatcher.expect(job_ids)
    results = await hub.broker.submit_many(batch.jobs, job_ids)
    jobs = []
    for sub, r, job_id in zip(batch.jobs, results, job_ids, strict=True):
        hub.webhooks.remember_job_url(r.job_id, sub.webhook_url)
        item: dict[str, Any] = {
            "job_id": r.job_id,
            "status": r.status.value,
            "position": r.position,
        }
        spec = JobSpec.of(sub.type, sub.customer_id, sub.requirements)
        hub.dispatcher.submitted(
            job_id, spec, sub.effective_priority, created=r.created, started_ms=started
        )
        warnings = await hub.warnings_for(spec)
        if warnings:
            item["warnings"] = warnings
        jobs.append(item)
    return {"jobs": jobs}


@router.get("", summary="List jobs, newest first")
async def list_jobs(
    hub: HubDep,
    key: KeyDep,
    *,
    status: JobStatus | None = None,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    type: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
) -> dict[str, Any]:
    jobs, next_cursor = await hub.broker.list_jobs(
        status=status,
        customer_id=list_filter(key, customer_id),
        job_type=type,
        limit=limit,
        cursor=cursor,
    )
    return {"jobs": [job_json(j) for j in jobs], "next_cursor": next_cursor}


@router.get("/{job_id}", summary="One job")
async def get_job(job_id: str, hub: HubDep, key: KeyDep) -> dict[str, Any]:
    job = visible(key, await hub.broker.get(job_id))
    body = job_json(job)
    if job.status is JobStatus.QUEUED:
        member = await hub.broker.member_of(job.id)
        if member is not None:
            spec = JobSpec.of(job.type, job.customer_id, job.requirements)
            body.update(eta_fields(await eta(hub, spec, member, job.position)))
    return body


async def own_job(hub: Hub, key: ApiKey, job_id: str) -> Job:
    """The job, or not found when the key's customer does not own it."""
    return visible(key, await hub.broker.get(job_id))


@router.post("/{job_id}/cancel", summary="Cancel a job (a running job's worker is told to stop)")
async def cancel(job_id: str, hub: HubDep, key: KeyDep) -> dict[str, Any]:
    await own_job(hub, key, job_id)
    return job_json(await hub.broker.cancel(job_id, "cancelled by request"))


@router.delete("/{job_id}", summary="Cancel a job (same as POST .../cancel)")
async def delete(job_id: str, hub: HubDep, key: KeyDep) -> dict[str, Any]:
    await own_job(hub, key, job_id)
    return job_json(await hub.broker.cancel(job_id, "cancelled by request"))


@router.post("/{job_id}/retry", summary="Queue a failed, timed-out or cancelled job again")
async def retry(job_id: str, hub: HubDep, key: KeyDep) -> dict[str, Any]:
    await own_job(hub, key, job_id)
    return job_json(await hub.broker.retry(job_id))


@router.get("/{job_id}/explain", summary="Which workers can run the job, and why not")
async def explain_job(job_id: str, hub: HubDep, key: KeyDep) -> dict[str, Any]:
    job = await own_job(hub, key, job_id)
    reply = explain(job, await hub.registry.all())
    limit = hub.settings.max_running(job.customer_id)
    if job.status == JobStatus.QUEUED and job.customer_id is not None and limit is not None:
        held = await hub.broker.held_by_customer(job.customer_id)
        if held >= limit:
            reply["summary"] = (
                f"customer '{job.customer_id}' is at its limit of {limit} running job(s) "
                f"(EMPQ_CUSTOMER_MAX_RUNNING); claims skip its jobs until one ends. "
                + reply["summary"]
            )
            reply["customer_limit"] = {"max_running": limit, "running": held}
    service = job.requirements.service_type
    if job.status == JobStatus.QUEUED and service in await hub.broker.paused_services():
        reply["summary"] = (
            f"service {service} is paused: claims skip its jobs until it is resumed "
            f"(empq resume {service}). " + reply["summary"]
        )
        reply["paused"] = True
    return reply


__all__ = ["HubDep", "KeyDep", "hub_of", "job_json", "own_job", "router", "submit_reply"]
