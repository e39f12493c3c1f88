"""REST routes for workers, stats and webhook registrations (CONTRACT §3 and §5)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from empq.errors import WorkerNotFound
from empq.hub.auth import require_api_key
from empq.hub.registry import dumps
from empq.hub.routes.api_jobs import HubDep, KeyDep
from empq.hub.routes.http_errors import ApiError
from empq.hub.scoping import notification_filters, sees
from empq.hub.services.webhooks import WebhookIn, public
from empq.protocol import NotificationFilters

router = APIRouter(prefix="/api", dependencies=[Depends(require_api_key)])


@router.get("/workers", tags=["workers"], summary="Connected and recently seen workers")
async def list_workers(hub: HubDep) -> dict[str, Any]:
    return {"workers": [dumps(w) for w in await hub.registry.all()]}


@router.get("/workers/{worker_id}", tags=["workers"], summary="One worker")
async def get_worker(worker_id: str, hub: HubDep) -> dict[str, Any]:
    lw = hub.registry.local.get(worker_id)
    info = lw.sync_info() if lw is not None else await hub.registry.get(worker_id)
    if info is None:
        raise WorkerNotFound(worker_id)
    return dumps(info)


@router.get(
    "/stats", tags=["stats"], summary="Queue depth, workers, throughput, wait and run times"
)
async def stats(hub: HubDep) -> dict[str, Any]:
    return await hub.stats.collect()


def _not_found(webhook_id: str) -> ApiError:
    return ApiError(404, "WEBHOOK_NOT_FOUND", f"webhook '{webhook_id}' not found")


@router.post("/webhooks", status_code=201, tags=["webhooks"], summary="Register a webhook")
async def create_webhook(body: WebhookIn, hub: HubDep, key: KeyDep) -> dict[str, Any]:
    if not key.is_operator:
        # A customer's webhook hears its own jobs only, and no worker alerts.
        filters = notification_filters(key, body.filters or NotificationFilters())
        events = [e for e in body.events if e != "worker_alert"]
        body = body.model_copy(update={"filters": filters, "events": events})
    return await hub.webhooks.create(body, owner=key.customer_id)


@router.get("/webhooks", tags=["webhooks"], summary="Registered webhooks")
async def list_webhooks(hub: HubDep, key: KeyDep) -> dict[str, Any]:
    records = await hub.webhooks.list_all()
    return {"webhooks": [public(r) for r in records if sees(key, r.get("customer_id"))]}


@router.get("/webhooks/{webhook_id}", tags=["webhooks"], summary="One webhook")
async def get_webhook(webhook_id: str, hub: HubDep, key: KeyDep) -> dict[str, Any]:
    record = await hub.webhooks.get(webhook_id)
    if record is None or not sees(key, record.get("customer_id")):
        raise _not_found(webhook_id)
    return public(record)


@router.delete(
    "/webhooks/{webhook_id}", status_code=204, tags=["webhooks"], summary="Remove a webhook"
)
async def delete_webhook(webhook_id: str, hub: HubDep, key: KeyDep) -> Response:
    record = await hub.webhooks.get(webhook_id)
    if record is None or not sees(key, record.get("customer_id")):
        raise _not_found(webhook_id)
    if not await hub.webhooks.delete(webhook_id):
        raise _not_found(webhook_id)
    return Response(status_code=204)
