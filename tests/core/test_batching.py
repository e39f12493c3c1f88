"""Script calls of one loop turn share a round trip; a job claimed in its own submission
(for a parked claim) never jumps the queue; hand-backs keep a job's place and attempts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from empq.broker import Broker
from empq.broker.core import new_job_id
from empq.codec import decode_hash
from empq.config import BrokerSettings
from empq.errors import StaleClaim
from empq.matching import WorkerState
from empq.models import JobSubmission, WorkerCapabilities
from empq.status import JobStatus
from tests.core.conftest import FakeClock

CAPS = WorkerCapabilities(services=["sim"])


def job(priority: int = 50, service: str = "sim") -> JobSubmission:
    return JobSubmission(type="t", priority=priority, requirements={"service_type": service})


async def known_queue(broker: Broker) -> None:
    """Run one job of the `sim` requirements, so the broker knows their queue.

    (A job is claimed in its own submission only for requirements the broker has seen:
    a brand-new signature is claimed the ordinary way.)
    """
    await broker.submit(job())
    (first,) = await broker.claim("w", CAPS)
    await broker.complete(first.job_id, first.claim_token, {})


async def test_concurrent_reports_each_get_their_own_reply(broker: Broker) -> None:
    await broker.submit_many([job() for _ in range(40)])
    got = await broker.claim(
        "w", CAPS.model_copy(update={"performance": {"concurrent_jobs": 40}}), max_jobs=40
    )
    assert len(got) == 40
    # One stale token among forty good ones: only that one is refused.
    calls = [broker.complete(a.job_id, a.claim_token, {"n": i}) for i, a in enumerate(got)]
    calls.append(broker.complete(got[0].job_id, "bogus.w", {}))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(r is None for r in results[:40])
    assert isinstance(results[40], StaleClaim)
    for i, a in enumerate(got):
        done = await broker.get(a.job_id)
        assert done.status is JobStatus.COMPLETED
        assert done.result == {"n": i}


async def test_batched_calls_survive_a_script_flush(broker: Broker) -> None:
    # After a Redis restart or SCRIPT FLUSH, pipelined EVALSHAs answer NOSCRIPT: each
    # call is then run again with its source, and still answers correctly.
    await broker.submit_many([job() for _ in range(5)])
    await broker.redis.script_flush()
    caps = CAPS.model_copy(update={"performance": {"concurrent_jobs": 5}})
    claims = await asyncio.gather(*(broker.claim(f"w{i}", caps) for i in range(5)))
    ids = [a.job_id for got in claims for a in got]
    assert len(ids) == len(set(ids)) == 5
    await broker.redis.script_flush()
    await asyncio.gather(*(broker.accept(a.job_id, a.claim_token) for got in claims for a in got))
    for i in ids:
        assert (await broker.get(i)).status is JobStatus.ACCEPTED


async def test_a_submission_claims_the_new_job_for_a_parked_worker(broker: Broker) -> None:
    await known_queue(broker)
    job_id = new_job_id()
    result, reserved = await broker.submit_and_claim(job(), job_id, "w", CAPS, WorkerState())
    assert result.created
    assert result.status is JobStatus.QUEUED
    assert reserved is not None
    assert reserved.job_id == job_id
    rec = await broker.get(job_id)
    assert rec.status is JobStatus.ASSIGNED
    assert rec.worker_id == "w"
    # The token fences the job like any claim's.
    await broker.complete(job_id, reserved.claim_token, {})
    assert (await broker.get(job_id)).status is JobStatus.COMPLETED


async def test_a_job_claimed_in_its_submission_reads_as_a_claim_would(broker: Broker) -> None:
    # reserve.lua does not read the job's hash back: the broker rebuilds it from what
    # the submission wrote. It must be the hash itself, workflow fields the step
    # inherited included, and the `assigned` event must be an ordinary claim's.

    def step(n: int, **workflow: int) -> JobSubmission:
        return JobSubmission(
            type="t",
            priority=40,
            payload={"prompt": "a cat", "n": [1, 2.5, None]},
            requirements={"service_type": "sim", "timeout_minutes": 2},
            customer_id="acme",
            workflow_id="wf",
            step_number=n,
            webhook_url="http://127.0.0.1:9/hook",
            max_retries=5,
            **workflow,
        )

    # The first step sets the workflow's priority and start (and makes the queue known).
    first = await broker.submit(step(1, workflow_priority=70, workflow_datetime=5))
    (a,) = await broker.claim("w0", CAPS)
    await broker.complete(first.job_id, a.claim_token, {})

    job_id = new_job_id()
    before = await broker.last_event_id()
    _, reserved = await broker.submit_and_claim(step(2), job_id, "w", CAPS, WorkerState())
    assert reserved is not None
    stored = decode_hash(await broker.redis.hgetall(broker.keys.job(job_id)))
    assert stored["workflow_priority"] == "70"
    assert reserved.fields == stored
    assert reserved.job == await broker.get(job_id)
    reserved_events = await broker.events_since(before)

    other = await broker.submit(step(3))
    before = await broker.last_event_id()
    (claimed,) = await broker.claim("w", CAPS)
    assert claimed.job_id == other.job_id
    claimed_events = await broker.events_since(before)

    def shape(events: list[Any]) -> list[tuple[str, dict[str, Any]]]:
        return [(e.type, {k: v for k, v in e.data.items() if k != "job_id"}) for e in events]

    assert [e.data["status"] for e in reserved_events] == ["queued", "assigned"]
    assert shape(reserved_events[1:]) == shape(claimed_events)


async def test_claiming_in_the_submission_never_jumps_a_better_queued_job(broker: Broker) -> None:
    await known_queue(broker)
    better = await broker.submit(job(priority=90))
    result, reserved = await broker.submit_and_claim(
        job(priority=10), new_job_id(), "w", CAPS, WorkerState()
    )
    assert reserved is None
    assert (await broker.get(result.job_id)).status is JobStatus.QUEUED
    assert (await broker.get(better.job_id)).status is JobStatus.QUEUED
    got = await broker.claim("w", CAPS)
    assert [a.job_id for a in got] == [better.job_id]


async def test_a_submission_whose_claim_fails_still_queues_the_job(broker: Broker) -> None:
    # Submission and claim run as one script call (submit_claim): an error in the
    # claim part must not lose the submission, which has already been written.
    await known_queue(broker)
    version_key = broker.keys.signatures_version
    version = await broker.redis.get(version_key)
    # The claim reads this key (as a string) to check the caller's view of the queues;
    # as a hash it makes the claim fail with WRONGTYPE before it writes anything.
    await broker.redis.delete(version_key)
    await broker.redis.hset(version_key, "x", "1")
    try:
        result, reserved = await broker.submit_and_claim(
            job(), new_job_id(), "w", CAPS, WorkerState()
        )
    finally:
        await broker.redis.delete(version_key)
        await broker.redis.set(version_key, version)
    assert result.created
    assert reserved is None
    assert (await broker.get(result.job_id)).status is JobStatus.QUEUED
    (got,) = await broker.claim("w", CAPS)
    assert got.job_id == result.job_id


@pytest.mark.parametrize("service", ["gpu", "sim"])
async def test_claiming_in_the_submission_respects_matching(broker: Broker, service: str) -> None:
    await known_queue(broker)
    # A worker that cannot run the job (another service, or draining) gets nothing.
    state = WorkerState(draining=service == "sim")
    result, reserved = await broker.submit_and_claim(
        job(service=service), new_job_id(), "w", CAPS, state
    )
    assert reserved is None
    assert (await broker.get(result.job_id)).status is JobStatus.QUEUED


async def test_repeated_idempotency_key_reserves_nothing(broker: Broker) -> None:
    first = await broker.submit(JobSubmission(type="t", idempotency_key="k"))
    again = JobSubmission(type="t", idempotency_key="k")
    result, reserved = await broker.submit_and_claim(
        again, new_job_id(), "w", WorkerCapabilities(), WorkerState()
    )
    assert not result.created
    assert result.job_id == first.job_id
    assert reserved is None
    assert (await broker.get(first.job_id)).status is JobStatus.QUEUED


async def test_claim_of_several_jobs_writes_one_event_entry(broker: Broker) -> None:
    await broker.submit_many([job(priority=p) for p in (30, 20, 10)])
    last = await broker.last_event_id()
    caps = CAPS.model_copy(update={"performance": {"concurrent_jobs": 3}})
    got = await broker.claim("w", caps, max_jobs=3)
    entries = await broker.redis.xrange(broker.keys.events, f"({last}", "+")
    assert len(entries) == 1
    events = await broker.events_since(last)
    assert [e.data["job_id"] for e in events] == [a.job_id for a in got]
    assert {e.data["status"] for e in events} == {"assigned"}
    assert len({e.id for e in events}) == 1


async def test_completions_of_one_turn_share_one_call_and_one_event_entry(broker: Broker) -> None:
    await broker.submit_many([job() for _ in range(8)])
    caps = CAPS.model_copy(update={"performance": {"concurrent_jobs": 8}})
    got = await broker.claim("w", caps, max_jobs=8)
    last = await broker.last_event_id()
    await asyncio.gather(*(broker.complete(a.job_id, a.claim_token, {"i": a.job_id}) for a in got))
    entries = await broker.redis.xrange(broker.keys.events, f"({last}", "+")
    assert len(entries) == 1
    events = await broker.events_since(last)
    assert sorted(e.data["job_id"] for e in events) == sorted(a.job_id for a in got)
    assert all(
        e.type == "job_completed" and e.data["result"] == {"i": e.data["job_id"]} for e in events
    )
    stats = await broker.stats()
    assert stats["jobs_by_status"]["completed"] == 8


@pytest.mark.parametrize("reached", [JobStatus.ASSIGNED, JobStatus.ACCEPTED, JobStatus.IN_PROGRESS])
async def test_a_hand_back_keeps_the_jobs_place_and_its_attempts(
    broker: Broker, reached: JobStatus
) -> None:
    first = await broker.submit(job())
    behind = await broker.submit(job(priority=10))
    (a,) = await broker.claim("w", CAPS)
    assert a.job_id == first.job_id
    if reached is not JobStatus.ASSIGNED:
        await broker.accept(a.job_id, a.claim_token)
    if reached is JobStatus.IN_PROGRESS:
        await broker.progress(a.job_id, a.claim_token, 10, None)
    with pytest.raises(StaleClaim):
        await broker.release(a.job_id, "bogus.w", "service down")  # fenced by its token
    await broker.release(a.job_id, a.claim_token, "service down")
    rec = await broker.get(a.job_id)
    assert rec.status is JobStatus.QUEUED
    assert rec.attempts == 0
    assert rec.position == 1  # its place in line, ahead of the lower-priority job
    assert (await broker.get(behind.job_id)).position == 2
    # The old token is dead: the worker that handed it back cannot report on it.
    with pytest.raises(StaleClaim):
        await broker.complete(a.job_id, a.claim_token, {})
    got = await broker.claim("w2", CAPS)
    assert [g.job_id for g in got] == [a.job_id]


async def test_more_than_ten_hand_backs_in_a_row_count_one_attempt(broker: Broker) -> None:
    sub = await broker.submit(job().model_copy(update={"max_retries": 0}))
    for n in range(10):
        (a,) = await broker.claim(f"w{n}", CAPS)
        await broker.release(a.job_id, a.claim_token, "cannot start it")
        assert (await broker.get(sub.job_id)).attempts == 0
    (a,) = await broker.claim("w10", CAPS)
    await broker.release(a.job_id, a.claim_token, "cannot start it")
    rec = await broker.get(sub.job_id)
    # With no retries left, the job that every worker gave up on ends instead of cycling.
    assert rec.attempts == 1
    assert rec.status is JobStatus.FAILED


async def test_jobs_a_worker_was_never_told_of_go_back_without_an_attempt(broker: Broker) -> None:
    told = await broker.submit(job(priority=90))
    lost = await broker.submit(job(priority=50))
    got = await broker.claim(
        "w", CAPS.model_copy(update={"performance": {"concurrent_jobs": 2}}), max_jobs=2
    )
    assert [a.job_id for a in got] == [told.job_id, lost.job_id]
    # The worker heard of the first claim only (the reply carrying the second was lost).
    back = await broker.release_unseen("w", [told.job_id], "claim reply lost")
    assert back == [lost.job_id]
    rec = await broker.get(lost.job_id)
    assert (rec.status, rec.attempts, rec.position) == (JobStatus.QUEUED, 0, 1)
    assert (await broker.get(told.job_id)).status is JobStatus.ASSIGNED
    # An accepted job is the worker's own business, whatever the hub thinks it holds.
    (again,) = await broker.claim("w", CAPS)
    await broker.accept(again.job_id, again.claim_token)
    assert await broker.release_unseen("w", [told.job_id], "claim reply lost") == []


async def _outcomes_counted(settings: BrokerSettings, prefix: str, together: bool) -> list[Any]:
    """Six jobs of customers A, B and none, held as assigned, accepted and in progress,
    completed (with a stale report among them) in one call or one call each; what the
    counts, stats and the hour's usage then hold."""
    clock = FakeClock()
    broker = await Broker.connect(settings.model_copy(update={"key_prefix": prefix}), clock=clock)
    try:
        customers = ["A", "A", "B", None, None, "B"]
        await broker.submit_many(
            [
                JobSubmission(type="t", customer_id=c, requirements={"service_type": "sim"})
                for c in customers
            ]
        )
        clock.advance(1.5)  # each job waited 1.5 s
        caps = CAPS.model_copy(update={"performance": {"concurrent_jobs": 6}})
        got = await broker.claim("w", caps, max_jobs=6)
        await broker.accept(got[1].job_id, got[1].claim_token)
        await broker.accept(got[2].job_id, got[2].claim_token)
        await broker.progress(got[2].job_id, got[2].claim_token, 40)
        clock.advance(2)
        reports: list[tuple[str, str, float | None, int]] = [
            (a.job_id, a.claim_token, t, g)
            for a, t, g in zip(
                got, [0.5, None, 1.25, 2.0, None, 0.75], [1, 2, 1, 4, 1, 2], strict=True
            )
        ]
        reports.insert(5, (got[5].job_id, "w:stale", 9.0, 8))  # changes nothing

        async def report(job_id: str, token: str, ptime: float | None, gpus: int) -> str:
            try:
                await broker.complete(job_id, token, {}, ptime, gpus=gpus)
            except StaleClaim:
                return "stale"
            return "ok"

        if together:
            replies = await asyncio.gather(*(report(*r) for r in reports))
        else:
            replies = [await report(*r) for r in reports]
        assert replies == ["ok"] * 5 + ["stale", "ok"]
        k = broker.keys
        return [
            await broker.redis.hgetall(k.counts),
            await broker.redis.hgetall(k.stats),
            await broker.redis.hgetall(k.usage(clock.now // 3_600_000)),
            await broker.stats(),
        ]
    finally:
        await broker.close()


async def test_completions_in_one_call_count_as_one_call_each_would(
    settings: BrokerSettings,
) -> None:
    one_by_one = await _outcomes_counted(settings, "apart", together=False)
    together = await _outcomes_counted(settings, "together", together=True)
    assert together == one_by_one
    counts, stats, usage, summary = together
    assert counts[b"completed"] == b"6"
    assert not any(f.startswith(b"held|") for f in counts)  # no job is held any more
    assert summary["jobs_by_status"]["completed"] == 6
    assert summary["completed_total"] == 6
    # Customer A: 0.5 s given, and 2 s measured from its acceptance on 2 GPUs.
    assert usage[b"A|jobs:completed"] == b"2"
    assert float(usage[b"A|run"]) == 2.5
    assert float(usage[b"A|gpu"]) == 0.5 + 2 * 2
    assert float(usage[b"B|gpu"]) == 1.25 + 0.75 * 2
    assert float(usage[b"|wait"]) == 3.0
    assert float(stats[b"gpu_seconds|A"]) == 4.5


async def _claims_recorded(settings: BrokerSettings, prefix: str, at_once: int) -> list[Any]:
    """Five jobs of customers A, B and none (with their own timeouts) claimed `at_once`
    a call; what the counts, the queue, the deadlines and the worker's jobs then hold."""
    clock = FakeClock()
    broker = await Broker.connect(settings.model_copy(update={"key_prefix": prefix}), clock=clock)
    try:
        customers = ["A", "B", None, "A", "B"]
        ids = await broker.submit_many(
            [
                JobSubmission(
                    type="t",
                    customer_id=c,
                    requirements={"service_type": "sim", "timeout_minutes": i + 1},
                )
                for i, c in enumerate(customers)
            ]
        )
        caps = WorkerCapabilities(services=["sim"], performance={"concurrent_jobs": 5})
        got: list[Any] = []
        while len(got) < 4:
            got += await broker.claim("w", caps, max_jobs=min(at_once, 4 - len(got)))
        assert [a.job_id for a in got] == [s.job_id for s in ids[:4]]
        k, r = broker.keys, broker.redis
        return [
            await r.hgetall(k.counts),
            await r.zrange(k.queued, 0, -1),
            await r.zrange(k.claims, 0, -1, withscores=True),
            await r.zrange(k.running, 0, -1, withscores=True),
            sorted(await r.smembers(k.worker_jobs("w"))),
        ]
    finally:
        await broker.close()


async def test_a_claim_of_several_jobs_records_what_one_job_a_call_does(
    settings: BrokerSettings,
) -> None:
    one_by_one = await _claims_recorded(settings, "apart", at_once=1)
    together = await _claims_recorded(settings, "together", at_once=4)
    # (Job ids differ between the two runs: compare what does not name them.)
    counts, queued, claims, running, mine = together
    assert counts == one_by_one[0]
    assert (counts[b"held|A"], counts[b"held|B"]) == (b"2", b"1")
    assert (counts[b"queued"], counts[b"assigned"]) == (b"1", b"4")
    assert len(queued) == 1 == len(one_by_one[1])
    assert [s for _, s in claims] == [s for _, s in one_by_one[2]]
    assert len(claims) == 4
    now = FakeClock().now
    assert [s for _, s in running] == [now + (i + 1) * 60_000 for i in range(4)]
    assert [s for _, s in one_by_one[3]] == [s for _, s in running]
    assert len(mine) == 4 == len(one_by_one[4])
