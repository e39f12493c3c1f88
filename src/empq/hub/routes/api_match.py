"""`POST /api/match`: a dry run of a submission (CONTRACT §10); nothing is stored."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from empq.hub.auth import require_api_key
from empq.hub.placement import dry_run
from empq.hub.routes.api_jobs import HubDep
from empq.models import JobSubmission

router = APIRouter(prefix="/api", tags=["jobs"], dependencies=[Depends(require_api_key)])


@router.post("/match", summary="Which workers could run this submission, its position and ETA")
async def match(sub: JobSubmission, hub: HubDep) -> dict[str, Any]:
    """The workers that could run it and why the others cannot, the position it would
    get, its ETA and the submit warnings; nothing is stored."""
    return await dry_run(hub, sub)
