"""The event stream: every change appears once, in order, for any reader on the same Redis."""

from __future__ import annotations

import asyncio

from empq.broker import Broker
from empq.models import JobSubmission, WorkerCapabilities


async def test_a_blocked_reader_wakes_on_the_next_change(broker: Broker) -> None:
    last = await broker.last_event_id()
    reader = asyncio.create_task(broker.read_events(last, block_ms=5000))
    r = await broker.submit(JobSubmission(type="t", customer_id="c"))
    (ev,) = await asyncio.wait_for(reader, 5)
    assert ev.type == "job_update"
    assert ev.data == {**ev.data, "job_id": r.job_id, "status": "queued", "customer_id": "c"}


async def test_events_of_a_life_in_order(broker: Broker) -> None:
    start = await broker.last_event_id()
    assert start == "0-0"
    r = await broker.submit(JobSubmission(type="t", requirements={"service_type": "s"}))
    (a,) = await broker.claim("w", WorkerCapabilities(services=["s"]))
    await broker.accept(a.job.id, a.claim_token)
    await broker.progress(a.job.id, a.claim_token, 50, "half")
    await broker.complete(a.job.id, a.claim_token, {"output_files": ["x"]}, processing_time=1.5)
    alert = await broker.publish("system_alert", {"severity": "warning", "message": "m"})
    events = await broker.events_since(start)
    assert [(e.type, e.data.get("status")) for e in events] == [
        ("job_update", "queued"),
        ("job_update", "assigned"),
        ("job_update", "accepted"),
        ("job_update", "in_progress"),
        ("job_completed", "completed"),
        ("system_alert", None),
    ]
    assert events[3].data["progress"] == 50
    assert events[3].data["message"] == "half"
    assert events[4].data["result"] == {"output_files": ["x"]}
    assert events[4].data["processing_time"] == 1.5
    assert all(e.data.get("job_id") == r.job_id for e in events[:5])
    assert events[-1].id == alert == await broker.last_event_id()
    assert await broker.events_since(alert) == []
    assert await broker.read_events(alert, block_ms=1) == []
