"""Artifacts (CONTRACT §3): a worker PUTs an output file under its claim; anyone with an
API key GETs it. Files are streamed to and from disk, never held in Redis or memory.

Served files carry `X-Content-Type-Options: nosniff`, a CSP that lets nothing run
(`default-src 'none'; sandbox`) and a type from `artifacts.SAFE_TYPES`; anything else
is `application/octet-stream` with `Content-Disposition: attachment`. An upload past
`EMPQ_ARTIFACT_MAX_BYTES` is refused with 413 (from `Content-Length` before a byte is
read, or as soon as the stream passes it); an upload cut off part-way leaves no file.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import ClientDisconnect

from empq.credentials import parse_worker_tokens
from empq.errors import JobNotFound
from empq.hub.artifacts import (
    ArtifactTooLarge,
    UnsafeArtifactPath,
    check_job_id,
    check_name,
    served_type,
)
from empq.hub.auth import check_api_key
from empq.hub.routes.api_jobs import HubDep
from empq.hub.routes.http_errors import ApiError
from empq.hub.runtime import Hub
from empq.hub.scoping import visible
from empq.status import ACTIVE_STATUSES

log = logging.getLogger("empq.hub.artifacts")

router = APIRouter(prefix="/api/jobs/{job_id}/artifacts", tags=["artifacts"])

#: Headers on every artifact response: nothing in it may run or be sniffed into HTML.
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


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


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "ARTIFACT_TOO_LARGE",
        f"artifact larger than the limit of {limit} bytes (EMPQ_ARTIFACT_MAX_BYTES)",
        {"limit": limit},
    )


def _declared_size(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise ApiError(400, "BAD_REQUEST", "Content-Length is not a number")
    return int(value)


@router.put("/{name}", status_code=201, summary="Store an output file (worker, under its claim)")
async def put_artifact(
    job_id: str,
    name: str,
    request: Request,
    hub: HubDep,
    x_empq_claim_token: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    # Workers hold a worker token rather than an API key; either is accepted here.
    secrets = [t.secret for t in parse_worker_tokens(hub.settings.worker_tokens)]
    if not check_api_key(request, also=secrets).is_operator:
        raise ApiError(403, "FORBIDDEN", "artifacts are stored by workers, not customer keys")
    if not x_empq_claim_token:
        raise ApiError(
            401,
            "CLAIM_TOKEN_REQUIRED",
            "header X-EMPQ-Claim-Token is required",
            [{"field": "X-EMPQ-Claim-Token", "message": "missing"}],
        )
    check_job_id(job_id)  # both validated before touching Redis or disk
    check_name(name)
    limit = hub.settings.artifact_max_bytes
    declared = _declared_size(request)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    await check_claim(hub, job_id, x_empq_claim_token)
    try:
        size = await hub.artifacts.save(
            job_id, name, request.stream(), request.headers.get("content-type"), max_bytes=limit
        )
    except ArtifactTooLarge:
        raise _too_large(limit) from None
    except UnsafeArtifactPath as exc:
        log.warning("artifact upload refused for job %s: %s", job_id, exc.message)
        raise ApiError(409, exc.code, exc.message) from None
    except ClientDisconnect:
        # Nothing was stored (save removes its partial file); no one is left to answer.
        log.info("artifact upload %s/%s cut off by the client; discarded", job_id, name)
        return JSONResponse({"error": {"code": "UPLOAD_INCOMPLETE"}}, status_code=400)
    body: dict[str, Any] = {
        "url": artifact_url(hub, request, job_id, name),
        "name": name,
        "size": size,
    }
    return JSONResponse(body, status_code=201)


@router.get("/{name}", summary="Fetch a stored output file", response_class=StreamingResponse)
async def get_artifact(job_id: str, name: str, request: Request, hub: HubDep) -> StreamingResponse:
    key = check_api_key(request)
    check_job_id(job_id)
    check_name(name)
    missing = ApiError(404, "ARTIFACT_NOT_FOUND", f"job '{job_id}' has no artifact '{name}'")
    if not key.is_operator:
        try:
            visible(key, await hub.broker.get(job_id))
        except JobNotFound:
            raise missing from None
    try:
        found = hub.artifacts.open(job_id, name)
    except UnsafeArtifactPath as exc:
        log.warning("artifact %s/%s not served: %s", job_id, name, exc.message)
        raise missing from None
    if found is None:
        raise missing
    media_type, inline = served_type(found.stored_type, name)
    headers = {
        **SAFE_HEADERS,
        "Content-Length": str(found.size),
        "Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{name}"',
    }
    return StreamingResponse(found.chunks(), media_type=media_type, headers=headers)
