"""A job's life in the broker: fenced reports, retries with back-off, timeouts, cancel, retry."""

from __future__ import annotations

import pytest

from empq.broker import Assignment, Broker
from empq.errors import InvalidTransition, JobNotFound, StaleClaim
from empq.models import JobSubmission, WorkerCapabilities
from empq.status import JobStatus

from .conftest import FakeClock

CAPS = WorkerCapabilities(services=["sim"])


def job(**kw: object) -> JobSubmission:
    kw.setdefault("type", "t")
    kw.setdefault("requirements", {"service_type": "sim"})
    return JobSubmission.model_validate(kw)


async def claimed(broker: Broker, worker: str = "w", **kw: object) -> Assignment:
    await broker.submit(job(**kw))
    (a,) = await broker.claim(worker, CAPS)
    return a


async def test_full_life_sets_every_timestamp(broker: Broker, clock: FakeClock) -> None:
    a = await claimed(broker)
    assert a.job.status is JobStatus.ASSIGNED
    assert a.job.worker_id == "w"
    clock.advance(1)
    await broker.accept(a.job.id, a.claim_token)
    assert (await broker.get(a.job.id)).status is JobStatus.ACCEPTED
    await broker.progress(a.job.id, a.claim_token, 40, "sampling")
    mid = await broker.get(a.job.id)
    assert (mid.status, mid.progress, mid.message) == (JobStatus.IN_PROGRESS, 40, "sampling")
    clock.advance(2)
    await broker.complete(a.job.id, a.claim_token, {"output_files": ["u"]})
    done = await broker.get(a.job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"output_files": ["u"]}
    assert done.created_at
    assert done.assigned_at
    assert done.started_at
    assert done.completed_at
    assert done.completed_at > done.started_at >= done.assigned_at
    stats = await broker.stats()
    assert stats["jobs_by_status"]["completed"] == 1
    assert stats["avg_run_seconds"] == pytest.approx(2.0)


async def test_complete_straight_from_assigned(broker: Broker) -> None:
    a = await claimed(broker)
    await broker.complete(a.job.id, a.claim_token, {}, processing_time=0.5)
    assert (await broker.get(a.job.id)).status is JobStatus.COMPLETED


@pytest.mark.parametrize("op", ["accept", "progress", "complete", "fail"])
async def test_stale_claim_token_changes_nothing(broker: Broker, op: str) -> None:
    a = await claimed(broker)
    before = await broker.get(a.job.id)
    calls = {
        "accept": lambda t: broker.accept(a.job.id, t),
        "progress": lambda t: broker.progress(a.job.id, t, 50),
        "complete": lambda t: broker.complete(a.job.id, t, {"x": 1}),
        "fail": lambda t: broker.fail(a.job.id, t, "boom"),
    }
    with pytest.raises(StaleClaim):
        await calls[op]("0000.w")
    assert await broker.get(a.job.id) == before


async def test_late_result_after_requeue_is_refused(broker: Broker) -> None:
    a = await claimed(broker, worker="w1")
    assert await broker.requeue_worker_jobs("w1", "worker lost") == [a.job.id]
    (b,) = await broker.claim("w2", CAPS)
    assert b.job.id == a.job.id
    assert b.job.attempts == 1
    with pytest.raises(StaleClaim):
        await broker.complete(a.job.id, a.claim_token, {"from": "w1"})
    await broker.complete(b.job.id, b.claim_token, {"from": "w2"})
    final = await broker.get(a.job.id)
    assert final.result == {"from": "w2"}
    assert final.worker_id == "w2"


async def test_unknown_job_is_not_found(broker: Broker) -> None:
    with pytest.raises(JobNotFound):
        await broker.get("nope")
    with pytest.raises(JobNotFound):
        await broker.complete("nope", "x.w", {})
    with pytest.raises(JobNotFound):
        await broker.cancel("nope")


async def test_failed_attempt_retries_after_back_off(broker: Broker, clock: FakeClock) -> None:
    a = await claimed(broker, max_retries=2)
    r = await broker.fail(a.job.id, a.claim_token, "oom", error_details={"error_type": "oom"})
    assert (r.retry_scheduled, r.retry_delay, r.attempts) == (True, 5.0, 1)
    j = await broker.get(a.job.id)
    assert j.status is JobStatus.FAILED
    assert j.error == "oom"
    assert j.retry_at is not None
    assert await broker.claim("w", CAPS) == []  # still backing off
    clock.advance(4.9)
    assert await broker.promote_due() == []
    clock.advance(0.1)
    assert await broker.promote_due() == [a.job.id]
    (b,) = await broker.claim("w", CAPS)
    r2 = await broker.fail(b.job.id, b.claim_token, "oom")
    assert (r2.retry_scheduled, r2.retry_delay) == (True, 15.0)
    clock.advance(15)
    await broker.promote_due()
    (c,) = await broker.claim("w", CAPS)
    r3 = await broker.fail(c.job.id, c.claim_token, "oom")
    assert (r3.retry_scheduled, r3.attempts) == (False, 3)
    final = await broker.get(a.job.id)
    assert final.status is JobStatus.FAILED
    assert final.attempts == 3
    assert (await broker.stats())["failed_total"] == 1


async def test_fail_without_retry_is_final_at_once(broker: Broker) -> None:
    a = await claimed(broker)
    r = await broker.fail(a.job.id, a.claim_token, "bad payload", retry=False)
    assert not r.retry_scheduled
    assert (await broker.get(a.job.id)).status is JobStatus.FAILED
    with pytest.raises(InvalidTransition):
        await broker.cancel(a.job.id)


async def test_retried_job_keeps_its_place_ahead_of_newer_jobs(
    broker: Broker, clock: FakeClock
) -> None:
    a = await claimed(broker)
    clock.advance(1)
    newer = await broker.submit(job())
    await broker.fail(a.job.id, a.claim_token, "flaky")
    clock.advance(5)
    await broker.promote_due()
    assert (await broker.get(a.job.id)).position == 1
    assert (await broker.get(newer.job_id)).position == 2


async def test_assignment_not_accepted_in_time_is_requeued(
    broker: Broker, clock: FakeClock
) -> None:
    a = await claimed(broker)
    clock.advance(29)
    assert await broker.sweep_claims() == []
    clock.advance(1)
    assert await broker.sweep_claims() == [a.job.id]
    j = await broker.get(a.job.id)
    assert (j.status, j.attempts, j.position, j.worker_id) == (JobStatus.QUEUED, 1, 1, None)


async def test_accepted_job_is_not_swept_by_claim_timeout(broker: Broker, clock: FakeClock) -> None:
    a = await claimed(broker)
    await broker.accept(a.job.id, a.claim_token)
    clock.advance(60)
    assert await broker.sweep_claims() == []


async def test_job_past_its_timeout_is_marked_timeout_and_retried(
    broker: Broker, clock: FakeClock
) -> None:
    a = await claimed(broker, requirements={"service_type": "sim", "timeout_minutes": 1})
    await broker.progress(a.job.id, a.claim_token, 10)
    clock.advance(59)
    assert await broker.sweep_timeouts() == []
    clock.advance(1)
    assert await broker.sweep_timeouts() == [a.job.id]
    j = await broker.get(a.job.id)
    assert j.status is JobStatus.TIMEOUT
    assert j.attempts == 1
    with pytest.raises(StaleClaim):
        await broker.complete(a.job.id, a.claim_token, {})
    clock.advance(5)
    assert await broker.promote_due() == [a.job.id]


async def test_worker_lost_out_of_retries_is_final_failed(broker: Broker) -> None:
    a = await claimed(broker, max_retries=0)
    await broker.requeue_worker_jobs("w", "worker lost")
    j = await broker.get(a.job.id)
    assert j.status is JobStatus.FAILED
    assert j.error == "worker lost"


@pytest.mark.parametrize("where", ["queued", "assigned", "accepted", "in_progress", "retrying"])
async def test_cancel_at_every_status(broker: Broker, where: str, clock: FakeClock) -> None:
    if where == "queued":
        job_id = (await broker.submit(job())).job_id
    else:
        a = await claimed(broker)
        job_id = a.job.id
        if where in ("accepted", "in_progress"):
            await broker.accept(job_id, a.claim_token)
        if where == "in_progress":
            await broker.progress(job_id, a.claim_token, 5)
        if where == "retrying":
            await broker.fail(job_id, a.claim_token, "flaky")
    events_before = await broker.last_event_id()
    j = await broker.cancel(job_id, "user asked")
    assert j.status is JobStatus.CANCELLED
    (ev,) = await broker.events_since(events_before)
    assert ev.data["status"] == "cancelled"
    if where not in ("queued", "retrying"):
        assert ev.data["worker_id"] == "w"  # so the hub can tell that worker to stop
    stats = await broker.stats()
    assert stats["queue_depth"] == 0
    assert stats["jobs_by_status"]["cancelled"] == 1
    clock.advance(60)
    assert await broker.promote_due() == []
    assert await broker.claim("w2", CAPS) == []
    with pytest.raises(InvalidTransition):
        await broker.cancel(job_id)


async def test_cancel_completed_is_refused(broker: Broker) -> None:
    a = await claimed(broker)
    await broker.complete(a.job.id, a.claim_token, {})
    with pytest.raises(InvalidTransition) as exc:
        await broker.cancel(a.job.id)
    assert exc.value.status == "completed"


async def test_operator_retry_gives_a_fresh_budget(broker: Broker) -> None:
    a = await claimed(broker, max_retries=0)
    await broker.fail(a.job.id, a.claim_token, "boom")
    j = await broker.retry(a.job.id)
    assert (j.status, j.attempts, j.error, j.position) == (JobStatus.QUEUED, 0, None, 1)
    (b,) = await broker.claim("w", CAPS)
    assert b.job.id == a.job.id
    with pytest.raises(InvalidTransition):
        await broker.retry(a.job.id)


async def test_retry_of_a_cancelled_job(broker: Broker) -> None:
    job_id = (await broker.submit(job())).job_id
    await broker.cancel(job_id)
    assert (await broker.retry(job_id)).status is JobStatus.QUEUED


async def test_idempotency_key_returns_the_first_job(broker: Broker) -> None:
    first = await broker.submit(job(idempotency_key="k1"))
    again = await broker.submit(job(idempotency_key="k1", priority=99))
    assert again.job_id == first.job_id
    assert not again.created
    assert first.created
    assert (await broker.stats())["queue_depth"] == 1


async def test_batch_is_ordered_and_positions_are_final(broker: Broker) -> None:
    rs = await broker.submit_many([job(priority=p) for p in (10, 90, 50)])
    assert [r.position for r in rs] == [3, 1, 2]


async def test_list_jobs_filters_and_pages(broker: Broker) -> None:
    ids = [
        (await broker.submit(job(customer_id="a" if i % 2 else "b", type=f"t{i % 3}"))).job_id
        for i in range(7)
    ]
    page, cursor = await broker.list_jobs(limit=3)
    assert [j.id for j in page] == ids[::-1][:3]
    assert cursor
    page2, _ = await broker.list_jobs(limit=3, cursor=cursor)
    assert [j.id for j in page2] == ids[::-1][3:6]
    mine, _ = await broker.list_jobs(customer_id="a")
    assert {j.id for j in mine} == {ids[i] for i in range(7) if i % 2}
    typed, _ = await broker.list_jobs(job_type="t0")
    assert {j.id for j in typed} == {ids[0], ids[3], ids[6]}
    a = await broker.claim("w", CAPS)
    assigned, _ = await broker.list_jobs(status=JobStatus.ASSIGNED)
    assert [j.id for j in assigned] == [a[0].job.id]


async def test_cleanup_forgets_old_final_jobs_only(broker: Broker, clock: FakeClock) -> None:
    a = await claimed(broker, customer_id="c", idempotency_key="k")
    await broker.complete(a.job.id, a.claim_token, {})
    queued = await broker.submit(job())
    clock.advance(100)
    assert await broker.cleanup(retention_seconds=50) == 1
    with pytest.raises(JobNotFound):
        await broker.get(a.job.id)
    assert (await broker.get(queued.job_id)).status is JobStatus.QUEUED
    again = await broker.submit(job(idempotency_key="k"))
    assert again.created


async def test_stats_by_priority_band(broker: Broker) -> None:
    await broker.submit_many([job(priority=p) for p in (0, 24, 25, 60, 75, 100, 100)])
    bands = (await broker.stats())["queued_by_priority_band"]
    assert bands == {"0-24": 2, "25-49": 1, "50-74": 1, "75-100": 3}


async def test_queued_specs_counts_by_signature(broker: Broker) -> None:
    await broker.submit_many([job(), job(), job(requirements={"service_type": "x"})])
    counts = sorted(n for _, n in (await broker.queued_specs()).values())
    assert counts == [1, 2]


async def test_check_claim_accepts_only_the_holder(broker: Broker) -> None:
    a = await claimed(broker)
    await broker.check_claim(a.job.id, a.claim_token)
    with pytest.raises(StaleClaim):
        await broker.check_claim(a.job.id, "other.w")
    with pytest.raises(JobNotFound):
        await broker.check_claim("nope", a.claim_token)
    await broker.complete(a.job.id, a.claim_token, {})
    with pytest.raises(StaleClaim):
        await broker.check_claim(a.job.id, a.claim_token)


async def test_claiming_several_jobs_at_once_keeps_claim_order(broker: Broker) -> None:
    ids = [r.job_id for r in await broker.submit_many([job(priority=p) for p in range(10)])]
    wide = CAPS.model_copy(update={"performance": {"concurrent_jobs": 5}})
    got = await broker.claim("w", wide, max_jobs=5)
    assert [a.job.id for a in got] == ids[::-1][:5]
    assert len({a.claim_token for a in got}) == 5
    for a in got:  # each token holds its own job, and only that one
        await broker.complete(a.job.id, a.claim_token, {})
    with pytest.raises(StaleClaim):
        await broker.accept(ids[0], got[0].claim_token)
    assert (await broker.stats())["jobs_by_status"]["completed"] == 5


async def test_a_batch_claim_honours_strict_isolation(broker: Broker) -> None:
    def strict(customer: str, priority: int) -> JobSubmission:
        return job(
            customer_id=customer,
            priority=priority,
            requirements={"service_type": "sim", "customer_isolation": "strict"},
        )

    await broker.submit_many(
        [strict("a", 90), job(customer_id="b", priority=80), strict("a", 70), job(priority=60)]
    )
    caps = WorkerCapabilities.model_validate(
        {
            "services": ["sim"],
            "customer_access": {"isolation": "strict"},
            "performance": {"concurrent_jobs": 4},
        }
    )
    got = await broker.claim("w", caps, max_jobs=4)
    assert [(a.job.customer_id, a.job.priority) for a in got] == [("a", 90), ("a", 70)]
