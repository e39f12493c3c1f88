"""`GET /api/usage` (CONTRACT §10): per-customer jobs, GPU-seconds, wait and run time;
and `GET /api/whoami`: what the presented key may see (the dashboard reads it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from empq.hub.auth import require_api_key
from empq.hub.routes.api_jobs import HubDep, KeyDep
from empq.hub.routes.http_errors import ApiError
from empq.hub.scoping import list_filter
from empq.protocol import now_ms

router = APIRouter(prefix="/api", tags=["usage"], dependencies=[Depends(require_api_key)])


def _ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


@router.get("/usage", summary="Usage per customer over a time range (hourly buckets)")
async def usage(
    hub: HubDep,
    key: KeyDep,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: Annotated[datetime | None, Query()] = None,
) -> dict[str, Any]:
    """Totals of the hours overlapping [from, to): default the last 24 hours.

    `from` and `to` are ISO 8601 (UTC unless they say otherwise) or seconds since the
    epoch. A customer key sees only its own customer.
    """
    end = _ms(to) if to is not None else now_ms()
    start = _ms(from_) if from_ is not None else end - 24 * 3_600_000
    retention_ms = int(hub.settings.usage_retention * 1000)
    if start >= end:
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            "'from' must be before 'to'",
            [{"field": "from", "message": "must be before 'to'"}],
        )
    start = max(start, end - retention_ms)  # older buckets have expired anyway
    found = await hub.broker.usage(list_filter(key, customer_id), start, end)
    return {
        "from": datetime.fromtimestamp(start / 1000, UTC).isoformat(),
        "to": datetime.fromtimestamp(end / 1000, UTC).isoformat(),
        "customers": [u.as_json() for u in found],
    }


@router.get("/whoami", summary="What the presented API key is: operator or customer")
async def whoami(key: KeyDep) -> dict[str, Any]:
    """`role` is `operator` (every job, every route) or `customer` (its own jobs only)."""
    if key.is_operator:
        return {"role": "operator", "customer_id": None, "max_priority": None}
    return {"role": "customer", "customer_id": key.customer_id, "max_priority": key.max_priority}
