"""A worker leaving: its jobs back in the queue, its record offline, everyone told.

Shared by the socket handlers (a graceful `disconnect`) and the heartbeat task (a
worker gone silent), so neither reaches into the other.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from empq.broker import Broker
    from empq.hub.registry import Registry

log = logging.getLogger("empq.hub.workers")


async def worker_gone(
    broker: Broker, registry: Registry, worker_id: str, reason: str, *, handed_back: bool = False
) -> list[str]:
    """Requeue a departed worker's jobs, mark it offline and tell everyone.

    The attempt counts unless the worker `handed_back` its jobs (CONTRACT §9).
    """
    jobs = await broker.requeue_worker_jobs(worker_id, reason, counted=not handed_back)
    await registry.mark_offline(worker_id)
    await broker.publish(
        "worker_disconnected", {"worker_id": worker_id, "reason": reason, "jobs_affected": jobs}
    )
    log.info(
        "worker %s gone (%s); requeued %s", worker_id, reason, jobs, extra={"worker_id": worker_id}
    )
    return jobs
