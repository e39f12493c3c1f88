"""Many claimers at once: each job handed out exactly once, none lost."""

from __future__ import annotations

import asyncio
from collections import Counter

from empq.broker import Broker
from empq.config import BrokerSettings
from empq.keys import Keys
from empq.models import JobSubmission, WorkerCapabilities
from empq.status import JobStatus


async def test_twenty_claimers_thousand_jobs_each_claimed_once(settings: BrokerSettings) -> None:
    # Separate brokers (each its own connection pool and caches), as separate hubs would be.
    brokers = [await Broker.connect(settings) for _ in range(4)]
    try:
        subs = [
            JobSubmission(
                type="t", priority=i % 7 * 10, requirements={"service_type": ["a", "b"][i % 2]}
            )
            for i in range(1000)
        ]
        ids = {r.job_id for r in await brokers[0].submit_many(subs)}
        caps = WorkerCapabilities(services=["a", "b"])
        seen: list[str] = []

        async def worker(n: int) -> None:
            b = brokers[n % len(brokers)]
            while True:
                got = await b.claim(f"w{n}", caps)
                if not got:
                    return
                for a in got:
                    seen.append(a.job.id)
                    await b.complete(a.job.id, a.claim_token, {"by": n})

        await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(20))), 60)
        assert Counter(seen).most_common(1)[0][1] == 1
        assert set(seen) == ids
        stats = await brokers[0].stats()
        assert stats["jobs_by_status"]["completed"] == 1000
        assert stats["queue_depth"] == 0
    finally:
        for b in brokers:
            await b.close()


async def test_concurrent_cancel_and_complete_leave_one_outcome(broker: Broker) -> None:
    caps = WorkerCapabilities(services=["s"])
    subs = [JobSubmission(type="t", requirements={"service_type": "s"}) for _ in range(200)]
    await broker.submit_many(subs)
    assignments = await broker.claim(
        "w",
        caps.model_copy(
            update={"performance": caps.performance.model_copy(update={"concurrent_jobs": 200})}
        ),
        max_jobs=200,
    )
    assert len(assignments) == 200

    async def complete(a: object) -> str:
        try:
            await broker.complete(a.job.id, a.claim_token, {})  # type: ignore[attr-defined]
            return "completed"
        except Exception:  # noqa: BLE001 - the loser of the race is refused
            return "refused"

    async def cancel(a: object) -> str:
        try:
            await broker.cancel(a.job.id)  # type: ignore[attr-defined]
            return "cancelled"
        except Exception:  # noqa: BLE001
            return "refused"

    results = await asyncio.gather(*(f(a) for a in assignments for f in (complete, cancel)))
    pairs = list(zip(results[::2], results[1::2], strict=True))
    for (done, cancelled), a in zip(pairs, assignments, strict=True):
        final = (await broker.get(a.job.id)).status
        assert (done == "completed") != (cancelled == "cancelled")
        assert final in (JobStatus.COMPLETED, JobStatus.CANCELLED)
    stats = await broker.stats()
    counts = stats["jobs_by_status"]
    assert counts["completed"] + counts["cancelled"] == 200
    assert counts["assigned"] == counts["in_progress"] == 0


async def test_every_key_carries_the_prefix_and_one_hash_tag(redis_url: str) -> None:
    settings = BrokerSettings(redis_url=redis_url, key_prefix="tenant1")
    b = await Broker.connect(settings)
    try:
        await b.submit(
            JobSubmission(
                type="t",
                customer_id="c",
                workflow_id="wf",
                requirements={"service_type": "s"},
                idempotency_key="i",
            )
        )
        (a,) = await b.claim("w", WorkerCapabilities(services=["s"]))
        await b.fail(a.job.id, a.claim_token, "x")
        await b.publish("system_alert", {"message": "hi"})
        keys = [k.decode() async for k in b.redis.scan_iter(count=1000)]
        assert len(keys) > 10
        assert all(k.startswith("tenant1:{tenant1}:") for k in keys), keys
        assert Keys("tenant1").base == "tenant1:{tenant1}"
    finally:
        await b.close()
