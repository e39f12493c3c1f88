"""Fair share (EMPQ_FAIR_SHARE=customer): at equal priority, customers take turns."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from empq.broker import Broker
from empq.config import BrokerSettings
from empq.models import JobSubmission, WorkerCapabilities

from .conftest import FakeClock

CAPS = WorkerCapabilities(services=["sim"])
WEIGHTS = {"A": 1.0, "B": 2.0, "C": 1.0}


def job(customer: str | None, priority: int = 50, **kw: object) -> JobSubmission:
    return JobSubmission.model_validate(
        {
            "type": "t",
            "priority": priority,
            "customer_id": customer,
            "requirements": {"service_type": "sim"},
            **kw,
        }
    )


@pytest.fixture
async def fair(redis_url: str, clock: FakeClock) -> AsyncIterator[Broker]:
    s = BrokerSettings(redis_url=redis_url, fair_share="customer", customer_weights=WEIGHTS)
    b = await Broker.connect(s, clock=clock)
    try:
        yield b
    finally:
        await b.close()


async def claim_customers(broker: Broker, n: int) -> list[str | None]:
    out = []
    for _ in range(n):
        (a,) = await broker.claim("w", CAPS)
        out.append(a.job.customer_id)
    return out


async def test_off_by_default_a_burst_holds_back_the_next_customer(broker: Broker) -> None:
    await broker.submit_many([job("A") for _ in range(20)])
    b = await broker.submit(job("B"))
    assert b.position == 21
    assert await claim_customers(broker, 21) == ["A"] * 20 + ["B"]


async def test_a_second_customer_waits_one_turn_not_the_burst(fair: Broker) -> None:
    await fair.submit_many([job("A") for _ in range(200)])
    assert await claim_customers(fair, 3) == ["A"] * 3
    first, second = await fair.submit_many([job("C"), job("C")])
    # C's first job comes right after the A job next in line, its second one turn later.
    assert (first.position, second.position) == (2, 4)
    assert (await fair.get(first.job_id)).position == 2
    assert await claim_customers(fair, 5) == ["A", "C", "A", "C", "A"]


async def test_weights_share_the_turns(fair: Broker) -> None:
    # Submitted one after the other: A's burst, then B's (B weighs 2, A 1).
    await fair.submit_many([job("A") for _ in range(30)])
    await fair.submit_many([job("B") for _ in range(30)])
    got = await claim_customers(fair, 30)
    assert got.count("B") in (19, 20, 21)
    # B never runs three in a row, A never two in a row, while both have jobs queued.
    text = "".join(c or "-" for c in got)
    assert "BBB" not in text
    assert "AA" not in text


async def test_higher_priority_still_goes_first(fair: Broker) -> None:
    await fair.submit_many([job("A", priority=80) for _ in range(5)])
    low = await fair.submit(job("B", priority=20))
    high = await fair.submit(job("B", priority=90))
    assert high.position == 1
    assert (await fair.get(low.job_id)).position == 7
    assert await claim_customers(fair, 7) == ["B", "A", "A", "A", "A", "A", "B"]


async def test_workflow_steps_keep_their_first_steps_turn(fair: Broker) -> None:
    step1 = await fair.submit(job("A", workflow_id="wf", workflow_priority=60, step_number=1))
    await fair.submit_many([job("A", priority=60) for _ in range(5)])
    # Step 2 inherits priority 60 and step 1's turn: it goes before A's later jobs.
    step2 = await fair.submit(job("A", workflow_id="wf", step_number=2))
    assert step1.position == 1
    assert step2.position == 2
    record = await fair.get(step2.job_id)
    assert record.workflow_priority == 60


async def test_a_customer_back_after_a_pause_is_not_held_behind_others(fair: Broker) -> None:
    await fair.submit_many([job("A") for _ in range(5)])
    assert await claim_customers(fair, 5) == ["A"] * 5  # the band is empty again
    c = await fair.submit(job("C"))
    a = await fair.submit(job("A"))
    assert (c.position, a.position) == (1, 2)


async def test_jobs_without_customer_share_one_turn(fair: Broker) -> None:
    await fair.submit_many([job(None) for _ in range(10)])
    await fair.submit(job("A"))
    assert await claim_customers(fair, 3) == [None, "A", None]


submit_step = st.tuples(
    st.just("submit"),
    st.sampled_from(list(WEIGHTS)),
    st.sampled_from([10, 50, 90]),
    st.integers(1, 8),
)
claim_step = st.tuples(st.just("claim"), st.integers(1, 6))


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(st.one_of(submit_step, claim_step), min_size=1, max_size=30))
async def test_interleaved_customers_keep_priority_and_their_turns(
    redis_url: str, steps: list[tuple[object, ...]]
) -> None:
    """Priority is never jumped, and while a job of customer Y waits, another customer X
    gets at most (Y's jobs ahead of it + 1) * w_X / w_Y + 1 turns at its priority."""
    clock = FakeClock()
    s = BrokerSettings(redis_url=redis_url, fair_share="customer", customer_weights=WEIGHTS)
    broker = await Broker.connect(s, clock=clock)
    try:
        await broker.redis.flushdb()
        # job id -> (customer, priority, jobs of its customer queued at its priority
        # when it came, turns each other customer had at its priority since)
        queued: dict[str, tuple[str, int, int, dict[str, int]]] = {}
        for step in steps:
            if step[0] == "submit":
                _, customer, priority, count = step
                assert isinstance(customer, str)
                assert isinstance(priority, int)
                for r in await broker.submit_many([job(customer, priority)] * int(str(count))):
                    ahead = sum(1 for c, p, *_ in queued.values() if (c, p) == (customer, priority))
                    queued[r.job_id] = (customer, priority, ahead, {})
                clock.advance(0.001)
                continue
            for a in await broker.claim("w", CAPS, max_jobs=int(str(step[1]))):
                customer, priority, ahead, others = queued.pop(a.job_id)
                assert all(p <= priority for _, p, *_ in queued.values())
                for c, turns in others.items():
                    bound = (ahead + 1) * WEIGHTS[c] / WEIGHTS[customer] + 1
                    assert turns <= bound, (customer, c, turns, bound)
                for other_c, other_p, _, seen in queued.values():
                    if other_p == priority and other_c != customer:
                        seen[customer] = seen.get(customer, 0) + 1
    finally:
        await broker.close()
