"""The event stream: every change appears once, in order, for any reader on the same Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aredis
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError

from empq.broker import Broker
from empq.broker import events as broker_events
from empq.broker.base import Event
from empq.config import BrokerSettings
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


async def _event_clients(redis: aredis.Redis) -> list[dict[str, Any]]:
    return [c for c in await redis.client_list() if c["name"].endswith(":events")]


async def _blocked_read(
    reader: broker_events.EventReader, admin: aredis.Redis, last: str, block_ms: int = 5000
) -> asyncio.Task[list[Event]]:
    """A read of what follows `last`, started and blocked in Redis's XREAD.

    The read's XREAD is written before the task first waits; a command `admin` sends
    after that reaches Redis behind it, so by its reply Redis holds the read blocked.
    """
    if reader._sock is None:
        await reader.read(last, block_ms=1)  # connected
    sock = reader._sock
    assert sock is not None
    written = asyncio.Event()
    write = sock.write

    def noting(data: bytes) -> None:
        write(data)
        written.set()

    sock.write = noting  # type: ignore[method-assign]
    task = asyncio.create_task(reader.read(last, block_ms=block_ms))
    await asyncio.wait_for(written.wait(), 5)
    assert [c["cmd"] for c in await _event_clients(admin)] == ["xread"]
    return task


async def _reads_a_new_job(broker: Broker, reader: broker_events.EventReader) -> Event:
    """A read blocked before a submission wakes with the job's `queued` event."""
    last = await broker.last_event_id()
    blocked = asyncio.create_task(reader.read(last, block_ms=5000))
    r = await broker.submit(JobSubmission(type="t"))
    (ev,) = await asyncio.wait_for(blocked, 5)
    assert (ev.type, ev.data["job_id"], ev.data["status"]) == ("job_update", r.job_id, "queued")
    return ev


async def _survives_a_killed_connection(
    broker: Broker, reader: broker_events.EventReader, admin: aredis.Redis, last: str
) -> None:
    """The reader's connection killed from Redis's side: that read fails, the next works."""
    (conn,) = await _event_clients(admin)
    blocked = await _blocked_read(reader, admin, last)
    await admin.client_kill_filter(_id=conn["id"])
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(blocked, 5)
    after = await broker.publish("system_alert", {"message": "m"})
    (alert,) = await reader.read(last, block_ms=100)
    assert (alert.type, alert.id) == ("system_alert", after)


async def test_the_event_reader_reads_on_its_own_connection_and_survives_its_loss(
    broker: Broker, redis_client: aredis.Redis
) -> None:
    reader = broker.event_reader()
    try:
        last = await broker.last_event_id()
        blocked = asyncio.create_task(reader.read(last, block_ms=5000))
        r = await broker.submit(JobSubmission(type="t", customer_id="c"))
        (ev,) = await asyncio.wait_for(blocked, 5)
        assert (ev.type, ev.data["job_id"], ev.data["status"]) == ("job_update", r.job_id, "queued")
        assert ev.id == await broker.last_event_id()
        # A claim of several jobs writes one entry of several events: all are read.
        await broker.submit(JobSubmission(type="t", customer_id="c"))
        claimed = await broker.claim("w", WorkerCapabilities(), max_jobs=2)
        got = await reader.read(ev.id, block_ms=100)
        assert [e.data["status"] for e in got] == ["queued", "assigned", "assigned"]
        assert {e.data["job_id"] for e in got[1:]} == {a.job.id for a in claimed}
        await _survives_a_killed_connection(broker, reader, redis_client, got[-1].id)
    finally:
        await reader.close()
    assert await _event_clients(redis_client) == []


async def test_a_cancelled_read_leaves_no_connection_behind(
    broker: Broker, redis_client: aredis.Redis
) -> None:
    reader = broker.event_reader()
    blocked = await _blocked_read(reader, redis_client, await broker.last_event_id(), 10_000)
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    await reader.close()
    assert await _event_clients(redis_client) == []


async def test_the_event_reader_speaks_resp3_too(redis_url: str) -> None:
    # `?protocol=3` in EMPQ_REDIS_URL: XREAD answers a map; the events are the same.
    broker = await Broker.connect(BrokerSettings(redis_url=f"{redis_url}?protocol=3"))
    reader = broker.event_reader()
    try:
        await _reads_a_new_job(broker, reader)
    finally:
        await reader.close()
        await broker.close()


async def test_a_read_redis_does_not_answer_in_time_fails_and_the_next_is_in_step(
    broker: Broker, redis_client: aredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reply that never comes within BLOCK + margin: the read fails, and its reply,
    # should it come later, must not be taken for the next read's.
    monkeypatch.setattr(broker_events, "READ_MARGIN_SECONDS", 0.2)
    reader = broker.event_reader()
    try:
        last = await broker.last_event_id()
        await reader.read(last, block_ms=10)  # connected
        await redis_client.execute_command("CLIENT", "PAUSE", 600, "ALL")
        with pytest.raises(TimeoutError):
            await reader.read(last, block_ms=100)
        alert = await broker.publish("system_alert", {"message": "after"})  # once unpaused
        (ev,) = await reader.read(last, block_ms=1000)
        assert (ev.type, ev.id) == ("system_alert", alert)
        assert await reader.read(alert, block_ms=50) == []
    finally:
        await reader.close()


def test_the_event_reader_on_uvloop(redis_url: str) -> None:
    # The reader speaks its socket through the transport (as the hub does, on uvloop,
    # whose transports are not asyncio's): a read, a lost connection, the next read.
    async def scenario() -> None:
        broker = await Broker.connect(BrokerSettings(redis_url=redis_url))
        admin = aredis.Redis.from_url(redis_url)
        reader = broker.event_reader()
        try:
            ev = await _reads_a_new_job(broker, reader)
            await _survives_a_killed_connection(broker, reader, admin, ev.id)
        finally:
            await reader.close()
            assert await _event_clients(admin) == []
            await admin.aclose()
            await broker.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
