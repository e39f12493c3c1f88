"""What a customer key may see and do (docs/security.md, "Scoped API keys").

One set of rules for REST and the WebSocket. An operator key (or no keys configured)
passes everything through unchanged. A customer key:

- submits only as its customer: a missing `customer_id` becomes its own, another one
  is refused (403), and so is a `priority` or `workflow_priority` above its
  `max_priority` (refused rather than capped, so a client never runs at a priority it
  did not ask for);
- finds only its own jobs: another customer's job is "not found", exactly as a job that
  does not exist, so ids cannot be probed;
- lists and subscribes only to its own jobs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from empq.credentials import ApiKey
from empq.errors import CustomerNotFound, Forbidden, JobNotFound, RateLimited
from empq.models import Job, JobSubmission
from empq.protocol import NotificationFilters

if TYPE_CHECKING:
    from empq.broker import Broker


def scoped_submission(key: ApiKey, sub: JobSubmission) -> JobSubmission:
    """The submission as `key` may queue it (its customer filled in), or `Forbidden`."""
    if key.is_operator:
        return sub
    if sub.customer_id is not None and sub.customer_id != key.customer_id:
        raise Forbidden(
            "this API key submits only for its own customer",
            details=[{"field": "customer_id", "message": "must be this key's customer"}],
        )
    ceiling = key.max_priority
    if ceiling is not None:
        for name in ("priority", "workflow_priority"):
            value = getattr(sub, name)
            if value is not None and value > ceiling:
                raise Forbidden(
                    f"this API key submits at priority {ceiling} or lower",
                    details=[{"field": name, "message": f"must be <= {ceiling}"}],
                )
    if sub.customer_id == key.customer_id:
        return sub
    return sub.model_copy(update={"customer_id": key.customer_id})


async def take_rate(broker: Broker, key: ApiKey, count: int) -> None:
    """`RateLimited` when a customer key submits past its customer's rate."""
    if key.is_operator or key.customer_id is None or not broker.settings.customer_submit_rate:
        return
    wait = await broker.take_submissions(key.customer_id, count)
    if wait > 0:
        raise RateLimited(key.customer_id, wait)


def sees(key: ApiKey, customer_id: str | None) -> bool:
    """Whether `key` may see a job of this customer."""
    return key.is_operator or customer_id == key.customer_id


def visible(key: ApiKey, job: Job) -> Job:
    """`job`, or `JobNotFound` when it belongs to another customer than the key's."""
    if not sees(key, job.customer_id):
        raise JobNotFound(job.id)
    return job


def list_filter(key: ApiKey, customer_id: str | None) -> str | None:
    """The `customer_id` a job list is filtered to; another customer's is "not found"."""
    if key.is_operator:
        return customer_id
    if customer_id is not None and customer_id != key.customer_id:
        raise CustomerNotFound(customer_id)
    return key.customer_id


def notification_filters(key: ApiKey, filters: NotificationFilters) -> NotificationFilters:
    """A subscription's filters, held to the key's own customer."""
    if key.is_operator:
        return filters
    list_filter(key, filters.customer_id)
    return filters.model_copy(update={"customer_id": key.customer_id})
