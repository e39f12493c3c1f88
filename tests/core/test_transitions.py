"""Every status change the broker makes is one the contract allows, and the Lua order key
is the one `ordering` defines."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from empq.broker import Assignment, Broker
from empq.errors import EmpqError
from empq.models import JobSubmission, WorkerCapabilities
from empq.status import JobStatus, can_transition, is_final
from tests.support.ordering import (
    OrderFields,
    effective_priority,
    effective_time,
    job_id_of,
    order_key,
)

from .conftest import FakeClock

CAPS = WorkerCapabilities(services=["s"])
OPS = [
    "claim",
    "accept",
    "progress",
    "complete",
    "fail",
    "fail_final",
    "cancel",
    "retry",
    "lose_worker",
    "wait",
    "promote",
    "sweep",
]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(st.sampled_from(OPS), min_size=1, max_size=15), max_retries=st.integers(0, 2))
async def test_every_transition_is_allowed(
    broker: Broker, clock: FakeClock, ops: list[str], max_retries: int
) -> None:
    await broker.redis.flushdb()
    start = await broker.last_event_id()
    job_id = (
        await broker.submit(
            JobSubmission(
                type="t",
                max_retries=max_retries,
                requirements={"service_type": "s", "timeout_minutes": 1},
            )
        )
    ).job_id
    held: Assignment | None = None
    for op in ops:
        try:
            if op == "claim":
                got = await broker.claim("w", CAPS)
                held = got[0] if got else held
            elif op == "wait":
                clock.advance(61)
            elif op == "promote":
                await broker.promote_due()
            elif op == "sweep":
                await broker.sweep_claims()
                await broker.sweep_timeouts()
            elif op == "cancel":
                await broker.cancel(job_id)
            elif op == "retry":
                await broker.retry(job_id)
            elif op == "lose_worker":
                await broker.requeue_worker_jobs("w", "lost")
            elif held is not None:
                token = held.claim_token
                if op == "accept":
                    await broker.accept(job_id, token)
                elif op == "progress":
                    await broker.progress(job_id, token, 50)
                elif op == "complete":
                    await broker.complete(job_id, token, {})
                elif op == "fail":
                    await broker.fail(job_id, token, "x")
                elif op == "fail_final":
                    await broker.fail(job_id, token, "x", retry=False)
        except EmpqError:
            pass  # refusals are part of the contract; what matters is what changed
    job = await broker.get(job_id)
    for ev in await broker.events_since(start):
        prev, new = ev.data.get("previous_status"), ev.data["status"]
        if prev is not None:
            assert can_transition(JobStatus(prev), JobStatus(new)), (prev, new, ops)
    stats = (await broker.stats())["jobs_by_status"]
    assert sum(stats.values()) == 1
    assert stats[job.status.value] == 1
    in_delayed = await broker.redis.zscore(broker.keys.delayed, job_id) is not None
    if job.status in (JobStatus.FAILED, JobStatus.TIMEOUT):
        assert in_delayed != is_final(job.status, job.retry_at is not None)
        assert in_delayed != job.is_final


@pytest.mark.parametrize(
    ("priority", "wp", "wt", "step"),
    [
        (10, None, None, None),
        (10, 90, None, 3),
        (50, None, 1_700_000_000_000, 2),
        (0, 100, 5, 999_999),
    ],
)
async def test_lua_order_key_is_the_python_one(
    broker: Broker,
    clock: FakeClock,
    priority: int,
    wp: int | None,
    wt: int | None,
    step: int | None,
) -> None:
    r = await broker.submit(
        JobSubmission(
            type="t",
            priority=priority,
            workflow_id="wf" if wp or wt else None,
            workflow_priority=wp,
            workflow_datetime=wt,
            step_number=step,
        )
    )
    raw = await broker.redis.hmget(broker.keys.job(r.job_id), ["order", "seq"])
    stored, seq = raw[0].decode(), int(raw[1])
    expected = order_key(
        OrderFields(
            priority=effective_priority(priority, wp),
            time_ms=effective_time(clock.now, wt),
            step=step or 0,
            seq=seq,
        ),
        r.job_id,
    )
    assert stored == expected
    assert job_id_of(stored) == r.job_id


def test_inherited_values_apply_only_when_the_job_has_none() -> None:
    assert effective_priority(10, None, 70) == 70
    assert effective_priority(10, 20, 70) == 20
    assert effective_time(5, None, 3) == 3
    assert effective_time(5, 4, 3) == 4


@pytest.mark.parametrize(
    "bad",
    [
        OrderFields(101, 0, 0, 0),
        OrderFields(0, 2**42, 0, 0),
        OrderFields(0, 0, 10**6, 0),
        OrderFields(0, 0, 0, 10**12),
    ],
)
def test_order_key_refuses_values_that_would_break_the_order(bad: OrderFields) -> None:
    with pytest.raises(ValueError, match="outside"):
        order_key(bad, "x")
