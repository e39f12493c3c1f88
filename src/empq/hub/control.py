"""Queue control from the hub: pause / resume a service type, drain a worker.

Pausing is a set in Redis (`Broker.set_paused`): claims on every hub skip the paused
services' queues, whose jobs stay queued. Each change is also published on the event
stream (`service_paused`), so every hub reads the set again at once and, on a resume,
wakes its parked claims that may take the service's queued jobs.

Draining is done by the hub holding the worker's socket: this hub if the worker is
connected here, else the one that reads the `worker_drain` event and has it. The
worker is marked `draining` (its claims give nothing, a parked claim is answered) and
sent `drain`, on which `empq worker` stops claiming and finishes its jobs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from empq.errors import WorkerNotFound
from empq.hub.registry import dumps
from empq.protocol import out
from empq.status import WorkerStatus

if TYPE_CHECKING:
    from empq.broker import Broker
    from empq.hub.claims import Claims
    from empq.hub.registry import LocalWorker, Registry
    from empq.hub.runtime import Hub

SERVICE_PAUSED = "service_paused"
WORKER_DRAIN = "worker_drain"


async def set_paused(hub: Hub, service_type: str, paused: bool) -> dict[str, Any]:
    """Pause or resume `service_type` for every hub; the reply of the REST route."""
    await hub.broker.set_paused(service_type, paused)
    await hub.broker.publish(SERVICE_PAUSED, {"service_type": service_type, "paused": paused})
    if not paused:
        await wake_service(hub.broker, hub.claims, service_type)
    return {"service_type": service_type, "paused": paused}


async def services(broker: Broker) -> dict[str, Any]:
    """`GET /api/services`: every service type paused or with queued jobs."""
    paused = await broker.paused_services()
    queued: dict[str, int] = {}
    for spec, count in (await broker.queued_specs()).values():
        if spec.service_type is not None:
            queued[spec.service_type] = queued.get(spec.service_type, 0) + count
    names = sorted(paused | set(queued))
    return {
        "services": [
            {"service_type": s, "paused": s in paused, "queued": queued.get(s, 0)} for s in names
        ]
    }


async def wake_service(broker: Broker, claims: Claims, service_type: str) -> None:
    """After a resume: wake this hub's parked claims for the service's queued jobs."""
    for spec, count in (await broker.queued_specs()).values():
        if spec.service_type != service_type:
            continue
        for _ in range(count):
            if not claims.queued(spec):
                break


async def on_service_paused(broker: Broker, claims: Claims, data: dict[str, Any]) -> None:
    """The `service_paused` event (from any hub): read the set again, wake on a resume."""
    await broker.refresh_paused()
    service = data.get("service_type")
    if data.get("paused") is False and isinstance(service, str):
        await wake_service(broker, claims, service)


async def drain(hub: Hub, worker_id: str) -> dict[str, Any]:
    """`POST /api/workers/{id}/drain`: the worker record, `draining`."""
    lw = hub.registry.local.get(worker_id)
    if lw is not None:
        await drain_local(hub.broker, hub.registry, hub.claims, lw)
        return dumps(lw.sync_info())
    info = await hub.registry.get(worker_id)
    if info is None or not info.connected:
        raise WorkerNotFound(worker_id)
    await hub.broker.publish(WORKER_DRAIN, {"worker_id": worker_id})
    record = dumps(info)
    record["status"] = WorkerStatus.DRAINING.value
    return record


async def on_worker_drain(
    broker: Broker, registry: Registry, claims: Claims, data: dict[str, Any]
) -> None:
    """The `worker_drain` event: drain the worker if its socket is on this hub."""
    wid = data.get("worker_id")
    lw = registry.local.get(wid) if isinstance(wid, str) else None
    if lw is not None:
        await drain_local(broker, registry, claims, lw)


async def drain_local(broker: Broker, registry: Registry, claims: Claims, lw: LocalWorker) -> None:
    """Mark a worker connected here `draining` and tell it to stop claiming."""
    lw.drained = True
    lw.info.status = WorkerStatus.DRAINING
    claims.end_parked(lw, "worker is draining")
    lw.conn.send(out("drain", worker_id=lw.worker_id, reason="drained by an operator"))
    await registry.save(lw)
    await broker.publish("worker_status", dumps(lw.sync_info()))
