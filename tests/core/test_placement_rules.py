"""Placement rules: VRAM as a budget, and warm models never breaking priority (CONTRACT §10)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from empq.broker import Broker
from empq.config import BrokerSettings
from empq.matching import (
    JobSpec,
    RunningJob,
    WorkerState,
    can_run,
    dynamic_reasons,
    is_warm,
    score,
    warm_first,
)
from empq.models import JobSubmission, Requirements, WorkerCapabilities
from tests.core.conftest import FakeClock


def caps(**kw: object) -> WorkerCapabilities:
    return WorkerCapabilities.model_validate({"services": ["sd"], **kw})


def gpu_job(gb: float | None, *models: str) -> JobSpec:
    hw = {} if gb is None else {"gpu_memory_gb": gb}
    return JobSpec.of(
        "t",
        None,
        Requirements.model_validate({"service_type": "sd", "hardware": hw, "models": list(models)}),
    )


def running(*gbs: float, gpu: int = 0) -> WorkerState:
    return WorkerState(running=tuple(RunningJob(None, gpu_memory_gb=g, gpu=gpu) for g in gbs))


GPU24 = caps(hardware={"gpu_memory_gb": 24}, performance={"concurrent_jobs": 3})


def test_a_job_fits_only_in_the_vram_left_unreserved() -> None:
    assert can_run(GPU24, gpu_job(12), running(12))
    assert not can_run(GPU24, gpu_job(8), running(20))
    [why] = dynamic_reasons(GPU24, running(20), gpu_job(8))
    assert why == "gpu memory: needs 8 GB, 4 GB unreserved of 24 GB"
    # A job that names no VRAM reserves none and always fits (a slot permitting).
    assert can_run(GPU24, gpu_job(None), running(12, 12))


def test_each_gpu_of_a_worker_is_its_own_budget() -> None:
    two = caps(hardware={"gpu_memory_gb": 24, "gpu_count": 2}, performance={"concurrent_jobs": 4})
    state = WorkerState()
    for gb in (20, 20):
        job = state.place(two, RunningJob(None, gpu_memory_gb=gb))
        state = state.with_job(job)
    assert sorted(r.gpu for r in state.running) == [0, 1]
    assert state.reserved_gb(2) == [20, 20]
    # 4 GB is left on each GPU: an 8 GB job fits on neither, though 8 GB are free in all.
    assert not can_run(two, gpu_job(8), state)
    assert can_run(two, gpu_job(4), state)
    # Best fit: a small job goes where it leaves the most room for a large one.
    half = state.with_job(RunningJob(None, gpu_memory_gb=4, gpu=0))
    fresh = WorkerState(running=(RunningJob(None, gpu_memory_gb=12, gpu=0),))
    assert fresh.fit_gpu(two, 8) == 0
    assert half.fit_gpu(two, 4) == 1


def test_warm_models_add_to_the_score_above_every_other_preference() -> None:
    job = gpu_job(None, "sdxl")
    warm = {"sd": ["flux", "sdxl"]}
    affine = caps(job_affinity={"preferred_types": ["t"]})
    assert is_warm(job, warm)
    assert not is_warm(job, {"sd": ["flux"]})
    assert not is_warm(gpu_job(None), warm)  # a job naming no models is warm nowhere
    assert score(caps(), job, None, warm) > score(affine, job, None, {})


async def test_the_broker_claims_only_what_fits_the_vram_left(broker: Broker) -> None:
    subs = [
        JobSubmission(type="t", priority=p, requirements={"hardware": {"gpu_memory_gb": gb}})
        for p, gb in ((90, 20), (80, 8), (70, 12))
    ]
    ids = [r.job_id for r in await broker.submit_many(subs)]
    # Holding 12 GB of 24: the 20 GB job (the best) does not fit, the 8 GB one does.
    got = await broker.claim("w", GPU24, running(12))
    assert [a.job_id for a in got] == [ids[1]]
    # A many-job claim on an empty worker stops at the budget: 20, then nothing fits.
    await broker.redis.flushdb()
    ids = [r.job_id for r in await broker.submit_many(subs)]
    got = await broker.claim("w2", GPU24, WorkerState(), max_jobs=3)
    assert [a.job_id for a in got] == [ids[0]]


# ---------------------------------------------------------------------- warm window

MODELS = ("a", "b", "c")
job_st = st.tuples(
    st.sampled_from([10, 50]),  # effective priority
    st.integers(min_value=0, max_value=20),  # seconds after the previous submission
    st.sampled_from(MODELS),
    st.booleans(),  # runnable by the worker (its service) or not
)


@pytest.fixture(params=[{}, {"*": 100}], ids=["no-limits", "customer-limits"])
async def windowed(
    redis_url: str, clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[dict[int, Broker]]:
    """Brokers with warm windows of 0, 5 and 30 s (with and without per-customer limits,
    whose ARGV comes before the window's in claim.lua)."""
    brokers = {}
    for window in (0, 5, 30):
        brokers[window] = await Broker.connect(
            BrokerSettings(
                redis_url=redis_url,
                warm_window_seconds=window,
                customer_max_running=request.param,
            ),
            clock=clock,
        )
    try:
        yield brokers
    finally:
        for b in brokers.values():
            await b.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    jobs=st.lists(job_st, min_size=1, max_size=10),
    loaded=st.lists(st.sampled_from(MODELS), max_size=2, unique=True),
    window=st.sampled_from([0, 5, 30]),
)
async def test_warmth_never_crosses_priority_hard_rules_or_the_window(
    windowed: dict[int, Broker],
    clock: FakeClock,
    jobs: list[tuple[int, int, str, bool]],
    loaded: list[str],
    window: int,
) -> None:
    broker = windowed[window]
    await broker.redis.flushdb()
    worker = WorkerCapabilities.model_validate({"services": ["sd"], "models": {"sd": list(MODELS)}})
    warm = {"sd": loaded}
    queued: dict[str, tuple[str, JobSubmission]] = {}  # job id -> (order key, submission)
    for prio, gap, model, runnable in jobs:
        clock.advance(gap)
        sub = JobSubmission(
            type="t",
            priority=prio,
            requirements={"service_type": "sd" if runnable else "other", "models": [model]},
        )
        [r] = await broker.submit_many([sub])
        assert r.member is not None
        queued[r.job_id] = (r.member, sub)

    def spec_of(sub: JobSubmission) -> JobSpec:
        return JobSpec.of(sub.type, sub.customer_id, sub.requirements)

    while True:
        got = await broker.claim("w", worker, models_loaded=warm)
        runnable = {j: (m, s) for j, (m, s) in queued.items() if can_run(worker, spec_of(s))}
        if not got:
            assert runnable == {}, "a runnable job was left unclaimed"
            return
        [a] = got
        assert a.job_id in runnable, "a job the hard rules forbid was claimed"
        member, sub = runnable[a.job_id]
        best_member, best = min(runnable.values(), key=lambda v: v[0])
        # Strict priority: never a lower effective priority while a higher one waits.
        assert sub.priority == best.priority
        if member != best_member:
            # Only a warm job, only ahead of cold ones, within the window.
            assert window > 0
            assert is_warm(spec_of(sub), warm)
            assert not is_warm(spec_of(best), warm)
            assert int(member[3:16]) - int(best_member[3:16]) <= window * 1000
        del queued[a.job_id]


def test_warm_first_moves_nothing_across_priority_or_past_the_window() -> None:
    specs = {"cold": gpu_job(None, "x"), "warm": gpu_job(None, "y")}
    loaded = {"sd": ["y"]}
    key = "{:03d}{:013d}000000{:012d}|j{}"
    same = [(key.format(50, 1000, 1, 1), "cold"), (key.format(50, 3000, 2, 2), "warm")]
    moved = list(same)
    assert warm_first(moved, specs, loaded, 2000)
    assert [s for _, s in moved] == ["warm", "cold"]
    for window in (0, 1999):
        kept = list(same)
        assert not warm_first(kept, specs, loaded, window)
        assert kept == same
    lower = [(key.format(50, 1000, 1, 1), "cold"), (key.format(60, 1000, 2, 2), "warm")]
    assert not warm_first(list(lower), specs, loaded, 10_000)


async def test_a_warm_job_goes_first_only_within_the_window(
    windowed: dict[int, Broker], clock: FakeClock
) -> None:
    worker = WorkerCapabilities.model_validate({"services": ["sd"], "models": {"sd": ["a", "b"]}})
    warm = {"sd": ["b"]}

    async def queue() -> list[str]:
        ids = []
        for model, gap in (("a", 0), ("b", 10), ("b", 60)):
            clock.advance(gap)
            sub = JobSubmission(type="t", requirements={"service_type": "sd", "models": [model]})
            ids += [r.job_id for r in await windowed[0].submit_many([sub])]
        return ids

    cold, warm_soon, warm_late = await queue()
    # Strict order without a window, whatever is warm.
    assert [a.job_id for a in await windowed[0].claim("w", worker, models_loaded=warm)] == [cold]
    await windowed[0].redis.flushdb()
    cold, warm_soon, warm_late = await queue()
    # With 30 s: the warm job queued 10 s after the cold one goes first; the one 70 s
    # after it does not.
    order = [
        (await windowed[30].claim("w", worker, models_loaded=warm))[0].job_id for _ in range(3)
    ]
    assert order == [warm_soon, cold, warm_late]


async def test_stale_candidates_never_let_warmth_cross_a_new_better_job(
    windowed: dict[int, Broker], clock: FakeClock
) -> None:
    """Jobs queued after the claimer's last look are checked in claim.lua: a warm job
    from stale candidates is taken only if it is still within the window of the best."""
    worker = WorkerCapabilities.model_validate({"services": ["sd"], "models": {"sd": ["a", "b"]}})
    claimer, other = windowed[30], windowed[0]

    def sub(model: str, priority: int = 50, **kw: object) -> JobSubmission:
        return JobSubmission.model_validate(
            {
                "type": "t",
                "priority": priority,
                "requirements": {"service_type": "sd", "models": [model]},
                **kw,
            }
        )

    for new_job, expect_new in (
        (sub("a", 90), True),  # higher priority: warmth never passes it
        (sub("a", workflow_datetime=clock.now - 100_000), True),  # far older: out of window
        (sub("a", workflow_datetime=clock.now + 5_000), False),  # newer: warm job still first
    ):
        await claimer.redis.flushdb()
        ids = []
        for model, gap in (("a", 0), ("a", 1), ("b", 4)):
            clock.advance(gap)
            ids += [r.job_id for r in await other.submit_many([sub(model)])]
        first, _, warm = ids
        # A claim with nothing warm takes the head and keeps the rest as candidates.
        assert [a.job_id for a in await claimer.claim("w", worker)] == [first]
        # Another process queues a job; then a claim with "b" warm, from those candidates.
        [queued] = await other.submit_many([new_job])
        got = await claimer.claim("w", worker, models_loaded={"sd": ["b"]})
        assert [a.job_id for a in got] == [queued.job_id if expect_new else warm]


async def test_a_dry_run_position_inherits_the_workflows_priority_and_time(
    broker: Broker, clock: FakeClock
) -> None:
    await broker.submit_many([JobSubmission(type="t", priority=60) for _ in range(2)])
    await broker.submit_many(
        [JobSubmission(type="t", priority=10, workflow_id="wf", workflow_priority=90)]
    )
    clock.advance(5)
    # A later step of "wf" that names no priority of its own is claimed as the workflow's
    # 90, after step 0 and before the priority-60 jobs.
    step = JobSubmission(type="t", priority=10, workflow_id="wf", step_number=1)
    assert await broker.position_below(await broker.order_bound(step)) == 2
    # Outside the workflow, priority 10 comes last.
    alone = JobSubmission(type="t", priority=10)
    assert await broker.position_below(await broker.order_bound(alone)) == 4
    # Nothing was queued by asking.
    assert (await broker.stats())["queue_depth"] == 3
    assert await broker.ahead_for([], "999") == 0
