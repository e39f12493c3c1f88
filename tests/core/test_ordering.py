"""The claim order of CONTRACT §2, end to end through the broker."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from empq.broker import Broker
from empq.models import JobSubmission, WorkerCapabilities
from tests.support.ordering import OrderFields, order_key, parse_order_key

from .conftest import FakeClock

CAPS = WorkerCapabilities(services=["sim"])
DAY_MS = 24 * 3600 * 1000


def job(**kw: object) -> JobSubmission:
    kw.setdefault("type", "t")
    kw.setdefault("requirements", {"service_type": "sim"})
    return JobSubmission.model_validate(kw)


async def claim_order(broker: Broker, n: int) -> list[str]:
    out = []
    for _ in range(n):
        (a,) = await broker.claim("w", CAPS)
        out.append(a.job.id)
        await broker.complete(a.job.id, a.claim_token, {})
    return out


async def test_priority_beats_age_of_a_day_old_workflow(broker: Broker, clock: FakeClock) -> None:
    old = await broker.submit(
        job(priority=10, workflow_id="wf-old", workflow_datetime=clock.now - DAY_MS)
    )
    new = await broker.submit(job(priority=90))
    assert await claim_order(broker, 2) == [new.job_id, old.job_id]


async def test_higher_priority_first_then_older_first(broker: Broker, clock: FakeClock) -> None:
    a = await broker.submit(job(priority=50))
    clock.advance(1)
    b = await broker.submit(job(priority=50))
    c = await broker.submit(job(priority=70))
    d = await broker.submit(job(priority=0))
    assert await claim_order(broker, 4) == [c.job_id, a.job_id, b.job_id, d.job_id]


async def test_same_millisecond_keeps_submission_order(broker: Broker) -> None:
    ids = [(await broker.submit(job())).job_id for _ in range(20)]
    assert await claim_order(broker, 20) == ids


async def test_workflow_steps_inherit_priority_and_start_time(
    broker: Broker, clock: FakeClock
) -> None:
    step1 = await broker.submit(job(workflow_id="wf", workflow_priority=80, step_number=1))
    clock.advance(60)
    other = await broker.submit(job(priority=80))
    clock.advance(60)
    # Step 2 omits workflow_priority and workflow_datetime: it inherits both, so it
    # sorts before `other` (same priority, older workflow start) despite priority=5.
    step2 = await broker.submit(job(workflow_id="wf", priority=5, step_number=2))
    record = await broker.get(step2.job_id)
    assert record.workflow_priority == 80
    assert record.workflow_datetime == clock.now - 120_000
    assert record.position == 2
    assert await claim_order(broker, 3) == [step1.job_id, step2.job_id, other.job_id]


async def test_lower_step_first_within_a_workflow(broker: Broker) -> None:
    s3 = await broker.submit(job(workflow_id="wf", workflow_priority=50, step_number=3))
    s1 = await broker.submit(job(workflow_id="wf", step_number=1))
    s2 = await broker.submit(job(workflow_id="wf", step_number=2))
    assert await claim_order(broker, 3) == [s1.job_id, s2.job_id, s3.job_id]


async def test_explicit_workflow_datetime_orders_by_it(broker: Broker, clock: FakeClock) -> None:
    late = await broker.submit(job(workflow_id="a", workflow_datetime=clock.now - 1000))
    early = await broker.submit(job(workflow_id="b", workflow_datetime=clock.now - 5000))
    assert await claim_order(broker, 2) == [early.job_id, late.job_id]


async def test_positions_follow_claim_order(broker: Broker) -> None:
    low = await broker.submit(job(priority=1))
    high = await broker.submit(job(priority=99))
    assert high.position == 1
    assert (await broker.get(low.job_id)).position == 2
    assert (await broker.get(high.job_id)).position == 1


@given(
    a=st.tuples(
        st.integers(0, 100),
        st.integers(0, 2**42 - 1),
        st.integers(0, 999_999),
        st.integers(0, 10**12 - 1),
    ),
    b=st.tuples(
        st.integers(0, 100),
        st.integers(0, 2**42 - 1),
        st.integers(0, 999_999),
        st.integers(0, 10**12 - 1),
    ),
)
def test_order_key_sorts_like_the_contract(
    a: tuple[int, int, int, int], b: tuple[int, int, int, int]
) -> None:
    ka = order_key(OrderFields(*a), "x")
    kb = order_key(OrderFields(*b), "x")
    expect_a = (-a[0], a[1], a[2], a[3])
    expect_b = (-b[0], b[1], b[2], b[3])
    assert (ka < kb) == (expect_a < expect_b)
    assert parse_order_key(ka) == (OrderFields(*a), "x")


async def test_a_job_submitted_between_claims_is_not_skipped(broker: Broker) -> None:
    """Claims reuse what an earlier look at the queue saw; a better newcomer still wins."""
    a, b = (r.job_id for r in await broker.submit_many([job(priority=50), job(priority=50)]))
    assert await claim_order(broker, 1) == [a]
    c = (await broker.submit(job(priority=90))).job_id
    assert await claim_order(broker, 1) == [c]
    d = (await broker.submit(job(priority=10))).job_id  # a worse newcomer changes nothing
    assert await claim_order(broker, 2) == [b, d]
