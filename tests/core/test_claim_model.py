"""Claims interleaved with submissions, from two hubs, always take the best runnable job.

A plain Python model of the queue (a list sorted by the contract's order) is the
oracle; two brokers on one Redis, each with its own candidate cache, are checked
against it after every step.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from empq.broker import Broker
from empq.config import BrokerSettings
from empq.matching import JobSpec, can_run
from empq.models import JobSubmission, WorkerCapabilities

from .conftest import FakeClock

WORKERS = {
    "both": WorkerCapabilities(services=["a", "b"], performance={"concurrent_jobs": 3}),
    "a-only": WorkerCapabilities(services=["a"], performance={"concurrent_jobs": 3}),
}

submit_step = st.tuples(
    st.just("submit"), st.integers(0, 100), st.sampled_from(["a", "b"]), st.integers(1, 3)
)
claim_step = st.tuples(
    st.just("claim"), st.sampled_from(list(WORKERS)), st.integers(0, 1), st.integers(1, 3)
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(st.one_of(submit_step, claim_step), min_size=1, max_size=25))
async def test_interleaved_claims_match_the_model(
    redis_url: str, steps: list[tuple[str, object, object, int]]
) -> None:
    clock = FakeClock()
    hubs = [
        await Broker.connect(BrokerSettings(redis_url=redis_url), clock=clock) for _ in range(2)
    ]
    try:
        await hubs[0].redis.flushdb()
        model: list[tuple[int, int, str, JobSubmission]] = []  # (-priority, seq, id, sub)
        seq = 0
        for step in steps:
            if step[0] == "submit":
                _, priority, service, count = step
                subs = [
                    JobSubmission(
                        type="t", priority=priority, requirements={"service_type": service}
                    )
                    for _ in range(count)
                ]
                for r, sub in zip(await hubs[0].submit_many(subs), subs, strict=True):
                    seq += 1
                    model.append((-sub.priority, seq, r.job_id, sub))
                model.sort(key=lambda m: m[:2])
                clock.advance(0.001)
            else:
                _, worker, hub, count = step
                caps = WORKERS[str(worker)]
                runnable = [
                    m for m in model if can_run(caps, JobSpec.of("t", None, m[3].requirements))
                ]
                expected = [m[2] for m in runnable[:count]]
                got = await hubs[int(str(hub))].claim(f"w{worker}", caps, max_jobs=count)
                assert [a.job.id for a in got] == expected
                model = [m for m in model if m[2] not in expected]
        stats = await hubs[0].stats()
        assert stats["queue_depth"] == len(model)
    finally:
        for b in hubs:
            await b.close()


async def test_a_new_kind_of_job_from_another_hub_is_not_skipped(redis_url: str) -> None:
    """Hub B has claimed before and cached what it saw; hub A then queues a better job of
    a kind (signature) B has never seen: B's next claim must return that job."""
    a = await Broker.connect(BrokerSettings(redis_url=redis_url))
    b = await Broker.connect(BrokerSettings(redis_url=redis_url))
    try:
        caps = WORKERS["both"]
        await a.submit_many([JobSubmission(type="t", requirements={"service_type": "a"})] * 3)
        assert len(await b.claim("w", caps)) == 1
        new = await a.submit(
            JobSubmission(type="t", priority=99, requirements={"service_type": "b"})
        )
        (got,) = await b.claim("w", caps)
        assert got.job.id == new.job_id
    finally:
        await a.close()
        await b.close()
