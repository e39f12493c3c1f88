"""The scripts' own pipelined connection: order, failure and recovery on a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aredis
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError
from redis.exceptions import TimeoutError as RedisTimeoutError

from empq.broker import Broker
from empq.broker.core import new_job_id
from empq.config import BrokerSettings
from empq.matching import WorkerState
from empq.models import JobSubmission, WorkerCapabilities
from empq.redis_server import RedisServer
from empq.status import JobStatus

CAPS = WorkerCapabilities(services=["sim"])


def job() -> JobSubmission:
    return JobSubmission(type="t", requirements={"service_type": "sim"})


async def kill_script_connection(redis: aredis.Redis) -> int:
    """Close, from Redis's side, the scripts' own connection."""
    killed = 0
    for client in await redis.client_list():
        if client["name"] == "empq:scripts":
            killed += await redis.client_kill_filter(_id=client["id"])
    return killed


async def test_calls_of_many_turns_keep_their_order(broker: Broker) -> None:
    # Forty submissions from forty tasks, each its own script call: positions come
    # back in the order the calls were made, as one connection guarantees.
    results = await asyncio.gather(*(broker.submit(job()) for _ in range(40)))
    assert [r.position for r in results] == list(range(1, 41))


async def test_a_call_redis_cannot_take_fails_alone(broker: Broker) -> None:
    # Queued in one turn with a good call: only the bad one fails, and says why.
    bad = broker.scripts.claim.queue(["k"], [None])
    good = asyncio.ensure_future(broker.submit(job()))
    with pytest.raises(DataError, match="must be str, int, float or bytes"):
        await bad
    assert (await good).position == 1


async def test_a_dropped_connection_is_replaced_for_the_next_call(
    broker: Broker, redis_client: aredis.Redis
) -> None:
    await broker.submit(job())
    assert await kill_script_connection(redis_client) == 1
    await broker.redis.ping()  # a round trip later, the drop has been seen
    result = await broker.submit(job())
    assert result.position == 2
    assert (await broker.get(result.job_id)).status is JobStatus.QUEUED


async def test_a_call_in_flight_when_the_connection_drops_fails_and_the_next_works(
    broker: Broker, redis_client: aredis.Redis
) -> None:
    await broker.submit(job())
    await redis_client.execute_command("CLIENT", "PAUSE", "5000", "WRITE")
    try:
        pending = asyncio.ensure_future(broker.submit(job()))
        # Paused, the call is written and waits for its reply, until its connection goes.
        assert await kill_script_connection(redis_client) == 1
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(pending, 5)
    finally:
        await redis_client.execute_command("CLIENT", "UNPAUSE")
    later = await broker.submit(job())
    assert (await broker.get(later.job_id)).status is JobStatus.QUEUED


async def test_a_claiming_submission_cut_off_by_a_drop_fails_and_leaves_no_claim(
    broker: Broker, redis_client: aredis.Redis
) -> None:
    first = await broker.submit(job())  # the signature is known: the submission claims
    (a,) = await broker.claim("w", CAPS)
    await broker.complete(a.job_id, a.claim_token, {})
    await redis_client.execute_command("CLIENT", "PAUSE", "5000", "WRITE")
    try:
        pending = asyncio.ensure_future(
            broker.submit_and_claim(job(), new_job_id(), "w", CAPS, WorkerState())
        )
        assert await kill_script_connection(redis_client) == 1
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(pending, 5)
    finally:
        await redis_client.execute_command("CLIENT", "UNPAUSE")
    # Neither the submission nor its claim ran: nothing is queued or held for "w".
    assert (await broker.get(first.job_id)).status is JobStatus.COMPLETED
    assert await broker.claim("w", CAPS) == []


async def test_the_socket_timeout_bounds_a_call(redis_url: str, redis_client: aredis.Redis) -> None:
    broker = await Broker.connect(BrokerSettings(redis_url=redis_url, redis_socket_timeout=0.3))
    try:
        await broker.submit(job())
        await redis_client.execute_command("CLIENT", "PAUSE", "5000", "WRITE")
        try:
            started = time.monotonic()
            with pytest.raises(RedisTimeoutError):
                await asyncio.wait_for(broker.submit(job()), 5)
            assert time.monotonic() - started < 3
        finally:
            await redis_client.execute_command("CLIENT", "UNPAUSE")
        after = await broker.submit(job())
        assert (await broker.get(after.job_id)).status is JobStatus.QUEUED
    finally:
        await broker.close()


async def test_calls_fail_while_redis_is_down_and_work_once_it_is_back(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", persistent=True).start()
    broker = await Broker.connect(BrokerSettings(redis_url=server.url))
    try:
        first = await broker.submit(job())
        server.stop()  # kept on disk: the restarted server has the first job
        with pytest.raises((RedisConnectionError, OSError)):
            await asyncio.wait_for(broker.submit(job()), 10)
        server = RedisServer(tmp_path / "redis", port=server.port, persistent=True).start()
        second = await asyncio.wait_for(broker.submit(job()), 10)
        assert second.position == 2
        (got,) = await broker.claim("w", CAPS)
        assert got.job_id == first.job_id
    finally:
        await broker.close()
        server.stop()


#: A script that keeps Redis busy for ARGV[1] microseconds: its reply comes that late.
BUSY = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - start >= tonumber(ARGV[1])
return 1
"""


async def test_settled_lets_the_callers_of_answered_calls_go_first(broker: Broker) -> None:
    # The event reader awaits `settled` after its own reply: the callers of the script
    # calls in flight then resume before it does.
    assert broker.scripts.channel is not None
    busy = broker.redis.register_script(BUSY)
    await busy(args=[0])  # loaded: the channel's call below runs at once
    order: list[str] = []

    call = broker.scripts.channel.run(busy, [], [100_000])  # Redis busy for 0.1 s
    broker.scripts.flush()  # written now

    async def caller() -> None:
        await call
        order.append("caller")

    async def reader() -> None:
        await broker.scripts.settled(5)
        order.append("reader")

    calling = asyncio.create_task(caller())
    reading = asyncio.create_task(reader())
    done, _ = await asyncio.wait({reading}, timeout=0.02)
    assert not done  # the call is still running in Redis, and the reader waits for it
    await asyncio.wait_for(asyncio.gather(calling, reading), 5)
    assert order == ["caller", "reader"]
    t0 = time.monotonic()
    await broker.scripts.settled(5)  # nothing in flight: at once
    assert time.monotonic() - t0 < 1


async def test_settled_waits_no_longer_than_asked(broker: Broker) -> None:
    assert broker.scripts.channel is not None
    busy = broker.redis.register_script(BUSY)
    await busy(args=[0])  # loaded: the channel's call below runs at once
    call = asyncio.ensure_future(broker.scripts.channel.run(busy, [], [500_000]))
    broker.scripts.flush()
    t0 = time.monotonic()
    await broker.scripts.settled(0.1)
    assert 0.05 <= time.monotonic() - t0 < 0.45
    assert not call.done()
    assert await asyncio.wait_for(call, 5) == 1


def _scenario_on(loop_factory: Callable[[], asyncio.AbstractEventLoop], url: str) -> None:
    """Order, large replies and writes, NOSCRIPT and a drop, on one event loop's sockets."""

    async def scenario() -> None:
        broker = await Broker.connect(BrokerSettings(redis_url=url))
        admin = aredis.Redis.from_url(url)
        try:
            results = await asyncio.gather(*(broker.submit(job()) for _ in range(30)))
            assert [r.position for r in results] == list(range(1, 31))
            # Jobs larger than the socket takes at once, their claim's reply in many pieces.
            big = [JobSubmission(type="big", payload={"blob": str(i) * 400_000}) for i in range(12)]
            queued = await asyncio.wait_for(
                asyncio.gather(*(broker.submit(sub) for sub in big)), 20
            )
            assert len({r.job_id for r in queued}) == 12
            everything = WorkerCapabilities(performance={"concurrent_jobs": 50})
            got = await broker.claim("w", everything, max_jobs=50)  # not the 30 "sim" jobs
            assert len(got) == 12
            blobs = sorted(a.job.payload["blob"] for a in got)
            assert blobs == sorted(sub.payload["blob"] for sub in big)
            # Calls queued while the socket's buffer is past its high-water mark wait
            # for it to drain (`resume_writing`), then go out in order.
            channel = broker.scripts.channel
            assert channel is not None
            echo = broker.redis.register_script("return ARGV[1]")
            await echo(args=["loaded"])
            blobs = [str(i) * 1_000_000 for i in range(20)]
            calls = [channel.run(echo, [], [blob]) for blob in blobs]
            channel.flush()  # one 20 MB write: more than the socket takes at once
            assert channel._sock is not None
            assert channel._sock.paused
            behind = [channel.run(echo, [], [f"behind {i}"]) for i in range(3)]
            channel.flush()  # held: nothing written while paused
            got = await asyncio.wait_for(asyncio.gather(*calls, *behind), 20)
            assert got == [b.encode() for b in blobs] + [f"behind {i}".encode() for i in range(3)]
            await admin.script_flush()  # NOSCRIPT: sent again with the source
            after_flush = await broker.submit(job())
            assert after_flush.position == 31
            assert await kill_script_connection(admin) == 1
            await broker.redis.ping()
            after_drop = await broker.submit(job())
            assert after_drop.position == 32
        finally:
            await admin.aclose()
            await broker.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(scenario())


@pytest.mark.parametrize(
    "loop_factory", [uvloop.new_event_loop, asyncio.new_event_loop], ids=["uvloop", "asyncio"]
)
def test_the_channel_on_each_event_loop(
    redis_url: str, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    # The channel reads and writes its socket through the transport itself; the hub
    # runs on uvloop (empq.runner), whose transports are not asyncio's.
    _scenario_on(loop_factory, redis_url)


def test_the_channel_over_resp3(redis_url: str) -> None:
    _scenario_on(uvloop.new_event_loop, f"{redis_url}?protocol=3")


async def test_a_redis_py_that_hides_the_socket_stops_start_up_with_a_clear_error(
    redis_client: aredis.Redis,
) -> None:
    from empq.errors import DependencyChanged
    from empq.redis_client import own_connection
    from empq.redis_socket import transport_of

    # Today's redis-py: a connected connection exposes its transport ...
    conn = own_connection(redis_client, "check")
    await conn.connect()  # type: ignore[no-untyped-call]
    try:
        assert transport_of(conn).get_protocol() is not None
    finally:
        await conn.disconnect()

    # ... and a release that keeps it elsewhere is refused by name, not run without it.
    class Moved:
        _writer = None

    with pytest.raises(DependencyChanged, match=r"redis-py .*install a redis version"):
        transport_of(Moved())
