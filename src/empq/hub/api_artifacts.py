"""Artifacts (CONTRACT §3): a worker PUTs an output file under its claim; anyone with an
API key GETs it. Files are streamed to and from disk, never held in Redis or memory."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse, JSONResponse

from empq.errors import JobNotFound
from empq.hub.api_jobs import HubDep
from empq.hub.auth import check_api_key
from empq.hub.http_errors import ApiError
from empq.hub.runtime import Hub
from empq.status import ACTIVE_STATUSES

router = APIRouter(prefix="/api/jobs/{job_id}/artifacts", tags=["artifacts"])


async def check_claim(hub: Hub, job_id: str, token: str) -> None:
    """The job must be held (assigned/accepted/in progress) under exactly this token."""
    # The broker keeps the current claim token in the job hash (claim.lua).
    redis: Any = hub.broker.redis
    status, current = await redis.hmget(hub.broker.keys.job(job_id), ["status", "claim_token"])
    if status is None:
        raise JobNotFound(job_id)
    held = status.decode() in {s.value for s in ACTIVE_STATUSES}
    if not held or current is None or not hmac.compare_digest(current, token.encode()):
        raise ApiError(409, "STALE_CLAIM", f"claim token does not hold job '{job_id}'")


def artifact_url(hub: Hub, request: Request, job_id: str, name: str) -> str:
    """The absolute URL a client fetches the artifact from."""
    base = hub.settings.public_url or hub.http_url or str(request.base_url)
    return f"{base.rstrip('/')}/api/jobs/{job_id}/artifacts/{name}"


@router.put("/{name}", status_code=201, summary="Store an output file (worker, under its claim)")
async def put_artifact(
    job_id: str,
    name: str,
    request: Request,
    hub: HubDep,
    x_empq_claim_token: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    # Workers hold a worker token rather than an API key; either is accepted here.
    check_api_key(request, also=hub.settings.worker_tokens)
    if not x_empq_claim_token:
        raise ApiError(
            401,
            "CLAIM_TOKEN_REQUIRED",
            "header X-EMPQ-Claim-Token is required",
            [{"field": "X-EMPQ-Claim-Token", "message": "missing"}],
        )
    hub.artifacts.path(job_id, name)  # validates both before touching Redis or disk
    await check_claim(hub, job_id, x_empq_claim_token)
    size = await hub.artifacts.save(
        job_id, name, request.stream(), request.headers.get("content-type")
    )
    body: dict[str, Any] = {
        "url": artifact_url(hub, request, job_id, name),
        "name": name,
        "size": size,
    }
    return JSONResponse(body, status_code=201)


@router.get("/{name}", summary="Fetch a stored output file", response_class=FileResponse)
async def get_artifact(job_id: str, name: str, request: Request, hub: HubDep) -> FileResponse:
    check_api_key(request)
    path = hub.artifacts.path(job_id, name)
    if not path.is_file():
        raise ApiError(404, "ARTIFACT_NOT_FOUND", f"job '{job_id}' has no artifact '{name}'")
    return FileResponse(path, media_type=hub.artifacts.content_type(job_id, name))
