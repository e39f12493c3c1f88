"""REST routes for queue control (CONTRACT §10): pause / resume a service, drain a worker.

Operator-only: their paths are not among `auth.CUSTOMER_ROUTES`, so a customer key
gets 403.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from empq.hub import control
from empq.hub.auth import require_api_key
from empq.hub.routes.api_jobs import HubDep

router = APIRouter(prefix="/api", dependencies=[Depends(require_api_key)])

ServiceType = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("/services", tags=["services"], summary="Service types: paused, queued jobs")
async def list_services(hub: HubDep) -> dict[str, Any]:
    return await control.services(hub.broker)


@router.post(
    "/services/{service_type}/pause", tags=["services"], summary="Claims skip this service"
)
async def pause_service(service_type: ServiceType, hub: HubDep) -> dict[str, Any]:
    return await control.set_paused(hub, service_type, True)


@router.post("/services/{service_type}/resume", tags=["services"], summary="Claim it again")
async def resume_service(service_type: ServiceType, hub: HubDep) -> dict[str, Any]:
    return await control.set_paused(hub, service_type, False)


@router.post(
    "/workers/{worker_id}/drain",
    tags=["workers"],
    summary="The worker finishes its jobs and takes no more",
)
async def drain_worker(worker_id: str, hub: HubDep) -> dict[str, Any]:
    return await control.drain(hub, worker_id)
