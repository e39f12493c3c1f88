"""Edges of the broker: Redis down, index entries that outlived their job, filters."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from empq.broker import Broker
from empq.config import BrokerSettings
from empq.matching import JobSpec, score
from empq.models import JobSubmission, Requirements, WorkerCapabilities
from empq.redis_server import free_port
from empq.status import JobStatus, is_final

from .conftest import FakeClock


async def test_ping_is_false_when_redis_is_down() -> None:
    client = Redis(port=free_port(), socket_connect_timeout=0.5)
    b = Broker(client, BrokerSettings())
    assert await b.ping() is False
    await b.close()


async def test_connect_needs_a_url() -> None:
    with pytest.raises(ValueError, match="redis_url"):
        await Broker.connect(BrokerSettings(redis_url=None))


async def test_index_entries_without_a_job_are_tidied(broker: Broker, clock: FakeClock) -> None:
    k = broker.keys
    await broker.redis.sadd(k.worker_jobs("w"), "ghost")
    await broker.redis.zadd(k.running, {"ghost": 0})
    await broker.redis.zadd(k.delayed, {"ghost": 0})
    assert await broker.requeue_worker_jobs("w", "lost") == []
    assert await broker.sweep_timeouts() == []
    assert await broker.promote_due() == []
    assert await broker.sweep_claims() == []
    assert await broker.redis.scard(k.worker_jobs("w")) == 0
    assert await broker.redis.zcard(k.running) == 0
    assert await broker.redis.zcard(k.delayed) == 0


async def test_list_jobs_combines_filters(broker: Broker) -> None:
    subs = [
        JobSubmission(type="a", customer_id="c1"),
        JobSubmission(type="b", customer_id="c1"),
        JobSubmission(type="a", customer_id="c2"),
    ]
    ids = [r.job_id for r in await broker.submit_many(subs)]
    jobs, cursor = await broker.list_jobs(customer_id="c1", job_type="a")
    assert [j.id for j in jobs] == [ids[0]]
    assert cursor is None
    jobs, _ = await broker.list_jobs(job_type="a", status=JobStatus.QUEUED)
    assert [j.id for j in jobs] == [ids[2], ids[0]]
    jobs, _ = await broker.list_jobs(status=JobStatus.COMPLETED)
    assert jobs == []


def test_score_counts_a_matching_cost_tier() -> None:
    spec = JobSpec.of("t", None, Requirements())
    premium = WorkerCapabilities(cost={"tier": "premium"})
    assert score(premium, spec, "premium") == score(premium, spec) + 1


def test_final_statuses() -> None:
    assert is_final(JobStatus.COMPLETED)
    assert is_final(JobStatus.CANCELLED)
    assert not is_final(JobStatus.QUEUED)
    assert is_final(JobStatus.FAILED)
    assert not is_final(JobStatus.FAILED, retry_scheduled=True)
