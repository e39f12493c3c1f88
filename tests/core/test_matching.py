"""The hard matching rules of CONTRACT §2, and that the broker's claim obeys them exactly."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from empq import matching
from empq.broker import Broker
from empq.matching import JobSpec, RunningJob, WorkerState, can_run, rank_workers, reasons, score
from empq.models import Isolation, JobSubmission, Requirements, WorkerCapabilities


def caps(**kw: object) -> WorkerCapabilities:
    return WorkerCapabilities.model_validate(kw)


def spec(job_type: str = "t", customer: str | None = None, **req: object) -> JobSpec:
    return JobSpec.of(job_type, customer, Requirements.model_validate(req))


BASE = {"services": ["comfyui"]}


@pytest.mark.parametrize(
    ("worker", "job", "reason"),
    [
        (BASE, spec(service_type="a1111"), "service_type 'a1111'"),
        ({**BASE, "components": ["x"]}, spec(service_type="comfyui", component="y"), "component"),
        ({**BASE, "workflows": ["x"]}, spec(service_type="comfyui", workflow="y"), "workflow"),
        (
            {**BASE, "models": {"comfyui": ["sdxl"]}},
            spec(service_type="comfyui", models=["sdxl", "flux"]),
            "missing models [flux]",
        ),
        (
            {**BASE, "hardware": {"gpu_memory_gb": 16}},
            spec(service_type="comfyui", hardware={"gpu_memory_gb": 24}),
            "hardware.gpu_memory_gb: needs 24, worker has 16",
        ),
        (BASE, spec(service_type="comfyui", hardware={"cpu_cores": 4}), "hardware.cpu_cores"),
        (BASE, spec(service_type="comfyui", hardware={"ram_gb": 4}), "hardware.ram_gb"),
        (BASE, spec(service_type="comfyui", hardware={"storage_gb": 4}), "hardware.storage_gb"),
        (
            {**BASE, "customer_access": {"isolation": "loose"}},
            spec(service_type="comfyui", customer_isolation="strict"),
            "customer_isolation 'strict' above worker isolation 'loose'",
        ),
        (
            {**BASE, "customer_access": {"allowed_customers": ["acme"]}},
            spec(customer="other", service_type="comfyui"),
            "customer 'other' not in worker allowed_customers",
        ),
        (
            {**BASE, "customer_access": {"allowed_customers": ["acme"]}},
            spec(service_type="comfyui"),
            "job has no customer_id",
        ),
        (
            {**BASE, "location": {"region": "eu"}},
            spec(service_type="comfyui", geographic_region="us"),
            "geographic_region 'us'",
        ),
        (
            {**BASE, "location": {"compliance": ["soc2"]}},
            spec(service_type="comfyui", compliance=["soc2", "hipaa"]),
            "missing compliance [hipaa]",
        ),
        (
            {**BASE, "job_anti_affinity": {"avoided_types": ["video"]}},
            spec("video", service_type="comfyui"),
            "avoided_types",
        ),
        (
            {**BASE, "job_anti_affinity": {"avoided_customers": ["c"]}},
            spec(customer="c", service_type="comfyui"),
            "avoided_customers",
        ),
    ],
)
def test_each_hard_rule_names_its_reason(
    worker: dict[str, object], job: JobSpec, reason: str
) -> None:
    why = reasons(caps(**worker), job)
    assert any(reason in r for r in why), why


def test_a_capable_worker_has_no_reasons() -> None:
    w = caps(
        services=["comfyui"],
        components=["c"],
        workflows="all",
        models={"comfyui": ["sdxl"]},
        hardware={"gpu_memory_gb": 24, "cpu_cores": 8, "ram_gb": 64, "storage_gb": 500},
        customer_access={"isolation": "strict", "allowed_customers": ["acme"]},
        location={"region": "eu", "compliance": ["soc2"]},
    )
    j = spec(
        customer="acme",
        service_type="comfyui",
        component="c",
        workflow="w",
        models=["sdxl"],
        hardware={"gpu_memory_gb": 24, "cpu_cores": 8, "ram_gb": 64, "storage_gb": 500},
        customer_isolation="strict",
        geographic_region="eu",
        compliance=["soc2"],
    )
    assert reasons(w, j) == []


def test_strict_job_needs_a_worker_running_only_its_customer() -> None:
    w = caps(
        services=["s"], customer_access={"isolation": "strict"}, performance={"concurrent_jobs": 4}
    )
    j = spec(customer="a", service_type="s", customer_isolation="strict")
    assert can_run(w, j, WorkerState((RunningJob("a"),)))
    assert not can_run(w, j, WorkerState((RunningJob("b"),)))


def test_worker_running_a_strict_job_takes_only_that_customer() -> None:
    w = caps(
        services=["s"], customer_access={"isolation": "strict"}, performance={"concurrent_jobs": 4}
    )
    state = WorkerState((RunningJob("a", Isolation.STRICT),))
    assert can_run(w, spec(customer="a", service_type="s"), state)
    assert not can_run(w, spec(customer="b", service_type="s"), state)
    assert not can_run(w, spec(service_type="s"), state)


def test_no_free_slot_and_draining() -> None:
    w = caps(services=["s"])
    assert "no free slot" in reasons(w, spec(service_type="s"), WorkerState((RunningJob(None),)))[0]
    assert reasons(w, spec(service_type="s"), WorkerState(draining=True)) == ["worker is draining"]


def test_max_concurrent_customers() -> None:
    w = caps(
        services=["s"],
        customer_access={"max_concurrent_customers": 1},
        performance={"concurrent_jobs": 4},
    )
    state = WorkerState((RunningJob("a"),))
    assert can_run(w, spec(customer="a", service_type="s"), state)
    assert not can_run(w, spec(customer="b", service_type="s"), state)


def test_score_prefers_affinity_and_the_snuggest_gpu() -> None:
    j = spec("img", service_type="s", hardware={"gpu_memory_gb": 24})
    big = caps(services=["s"], hardware={"gpu_memory_gb": 80})
    snug = caps(services=["s"], hardware={"gpu_memory_gb": 24})
    fan = caps(
        services=["s"], hardware={"gpu_memory_gb": 80}, job_affinity={"preferred_types": ["img"]}
    )
    assert score(snug, j) > score(big, j)
    assert rank_workers([("big", big), ("snug", snug), ("fan", fan)], j) == ["fan", "snug", "big"]


def test_spec_json_round_trips_and_signature_is_stable() -> None:
    j = spec("t", "c", service_type="s", models=["b", "a", "a"], compliance=["x"])
    assert JobSpec.from_json(j.to_json()) == j
    assert (
        j.signature
        == spec("t", "c", service_type="s", models=["a", "b"], compliance=["x"]).signature
    )


# ---------------------------------------------------------------- claim agrees with matching

services = st.sampled_from(["comfyui", "a1111", "sim"])
names = st.sampled_from(["a", "b", "c"])

worker_caps = st.builds(
    lambda svcs, comps, models, gpu, iso, allowed, region, comp, avoid_t, avoid_c: caps(
        services=svcs,
        components=comps,
        models={s: models for s in svcs},
        hardware={"gpu_memory_gb": gpu},
        customer_access={"isolation": iso, "allowed_customers": allowed},
        location={"region": region, "compliance": comp},
        job_anti_affinity={"avoided_types": avoid_t, "avoided_customers": avoid_c},
    ),
    st.lists(services, min_size=1, max_size=3, unique=True),
    st.one_of(st.just("all"), st.lists(names, max_size=2, unique=True)),
    st.lists(names, max_size=3, unique=True),
    st.sampled_from([0, 8, 24, 80]),
    st.sampled_from(["none", "loose", "strict"]),
    st.one_of(st.none(), st.lists(names, min_size=1, max_size=2, unique=True)),
    st.one_of(st.none(), st.sampled_from(["eu", "us"])),
    st.lists(st.sampled_from(["soc2", "hipaa"]), max_size=2, unique=True),
    st.lists(st.sampled_from(["t1", "t2"]), max_size=1),
    st.lists(names, max_size=1),
)

job_subs = st.builds(
    lambda jt, cust, svc, comp, models, gpu, iso, region, comp_l, prio: JobSubmission(
        type=jt,
        customer_id=cust,
        priority=prio,
        requirements=Requirements.model_validate(
            {
                "service_type": svc,
                "component": comp,
                "models": models,
                "hardware": {"gpu_memory_gb": gpu},
                "customer_isolation": iso,
                "geographic_region": region,
                "compliance": comp_l,
            }
        ),
    ),
    st.sampled_from(["t1", "t2", "t3"]),
    st.one_of(st.none(), names),
    st.one_of(st.none(), services),
    st.one_of(st.none(), names),
    st.lists(names, max_size=2, unique=True),
    st.one_of(st.none(), st.sampled_from([8, 24, 48])),
    st.sampled_from(["none", "loose", "strict"]),
    st.one_of(st.none(), st.sampled_from(["eu", "us"])),
    st.lists(st.sampled_from(["soc2", "hipaa"]), max_size=1),
    st.integers(0, 100),
)


def _built(sub: JobSubmission) -> JobSpec:
    """The spec of a submission built field by field, past `JobSpec.of`'s memory."""
    r = sub.requirements
    return JobSpec(
        type=sub.type,
        customer_id=sub.customer_id,
        service_type=r.service_type,
        component=r.component,
        workflow=r.workflow,
        models=tuple(sorted(set(r.models))),
        gpu_memory_gb=r.hardware.gpu_memory_gb,
        cpu_cores=r.hardware.cpu_cores,
        ram_gb=r.hardware.ram_gb,
        storage_gb=r.hardware.storage_gb,
        isolation=r.customer_isolation,
        region=r.geographic_region,
        compliance=tuple(sorted(set(r.compliance))),
    )


@settings(max_examples=200, deadline=None)
@given(subs=st.lists(job_subs, min_size=1, max_size=30))
def test_remembered_specs_are_the_specs_of_their_jobs(subs: list[JobSubmission]) -> None:
    # `JobSpec.of` remembers specs by their fields: a remembered spec must be the one
    # its job would get built afresh (so its queue, its signature), however many were
    # remembered before and when the memory is emptied.
    for sub in subs:
        got = JobSpec.of(sub.type, sub.customer_id, sub.requirements)
        want = _built(sub)
        assert got == want
        assert got.signature == want.signature
        assert got.to_json() == want.to_json()


def test_specs_are_remembered_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matching, "_SPECS", {})
    monkeypatch.setattr(matching, "_SPECS_MAX", 3)
    first = spec("t0")
    assert spec("t0") is first  # remembered
    for i in range(1, 4):
        spec(f"t{i}")
    assert len(matching._SPECS) <= 3
    assert spec("t0") == first  # built again once forgotten, equal all the same


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(worker=worker_caps, jobs=st.lists(job_subs, min_size=1, max_size=12))
async def test_claim_takes_exactly_the_best_job_matching_allows(
    broker: Broker, worker: WorkerCapabilities, jobs: list[JobSubmission]
) -> None:
    await broker.redis.flushdb()
    submitted = await broker.submit_many(jobs)
    ids = [r.job_id for r in submitted]
    # The contract's order is the submit order sorted by priority (no workflows here,
    # all in one millisecond of the fixed clock): the first runnable one must come out.
    ranked = sorted(range(len(jobs)), key=lambda i: (-jobs[i].priority, i))
    runnable = [
        ids[i]
        for i in ranked
        if can_run(worker, JobSpec.of(jobs[i].type, jobs[i].customer_id, jobs[i].requirements))
    ]
    got = await broker.claim("w", worker)
    if runnable:
        assert [a.job.id for a in got] == [runnable[0]]
    else:
        assert got == []
