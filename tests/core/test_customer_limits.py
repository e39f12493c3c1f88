"""Per-customer limits (EMPQ_CUSTOMER_MAX_RUNNING): a customer at its limit is skipped."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from empq.broker import Broker
from empq.config import BrokerSettings
from empq.models import JobSubmission, WorkerCapabilities
from empq.status import JobStatus

from .conftest import FakeClock

CAPS = WorkerCapabilities(services=["sim"])


def job(customer: str | None) -> JobSubmission:
    return JobSubmission(type="t", customer_id=customer, requirements={"service_type": "sim"})


def limited(redis_url: str, **limits: int) -> BrokerSettings:
    return BrokerSettings(redis_url=redis_url, customer_max_running=limits)


@pytest.fixture
async def broker2(redis_url: str, clock: FakeClock) -> AsyncIterator[Broker]:
    b = await Broker.connect(limited(redis_url, A=2), clock=clock)
    try:
        yield b
    finally:
        await b.close()


async def test_a_customer_at_its_limit_is_skipped_not_failed(broker2: Broker) -> None:
    a_jobs = [r.job_id for r in await broker2.submit_many([job("A") for _ in range(4)])]
    b_jobs = [r.job_id for r in await broker2.submit_many([job("B") for _ in range(2)])]
    got = [await broker2.claim(f"w{i}", CAPS) for i in range(5)]
    claimed = [a[0].job_id if a else None for a in got]
    # A's first two, then B's (A holds its limit of 2), then nothing: A's rest wait.
    assert claimed == [*a_jobs[:2], *b_jobs, None]
    assert (await broker2.get(a_jobs[2])).status == JobStatus.QUEUED
    assert await broker2.held_by_customer("A") == 2
    await broker2.complete(a_jobs[0], got[0][0].claim_token, {})
    (nxt,) = await broker2.claim("w9", CAPS)
    assert nxt.job_id == a_jobs[2]


async def test_every_way_a_job_leaves_its_worker_frees_the_customers_slot(
    broker2: Broker,
) -> None:
    await broker2.submit_many([job("A") for _ in range(6)])

    async def take() -> tuple[str, str]:
        (a,) = await broker2.claim("w", CAPS)
        return a.job_id, a.claim_token

    j, t = await take()
    await broker2.fail(j, t, "boom", retry=True)  # back to the delayed set
    j, t = await take()
    await broker2.cancel(j)
    j, t = await take()
    await broker2.release(j, t, "draining")
    j, t = await take()
    await broker2.complete(j, t, {})
    assert await broker2.held_by_customer("A") == 0
    # And the limit still holds afterwards: two at a time.
    await take()
    await take()
    assert await broker2.claim("w", CAPS) == []


async def test_limits_hold_under_twenty_concurrent_claimers(redis_url: str) -> None:
    settings = BrokerSettings(redis_url=redis_url, customer_max_running={"A": 3, "*": 5})
    hubs = [await Broker.connect(settings) for _ in range(4)]
    try:
        for customer in ("A", "B", "C", None):
            await hubs[0].submit_many([job(customer) for _ in range(30)])
        two_slots = WorkerCapabilities(services=["sim"], performance={"concurrent_jobs": 2})
        claims = await asyncio.gather(
            *(hubs[i % 4].claim(f"w{i}", two_slots, max_jobs=2) for i in range(20))
        )
        held = Counter(a.job.customer_id for batch in claims for a in batch)
        assert held["A"] == 3
        assert held["B"] == held["C"] == 5
        assert held[None] == 40 - 13  # jobs without a customer are not limited
        stats = await hubs[0].stats()
        assert stats["jobs_by_status"]["failed"] == 0
        assert stats["queue_depth"] == 120 - 40
        assert await hubs[0].held_by_customer("A") == 3
    finally:
        for b in hubs:
            await b.close()
