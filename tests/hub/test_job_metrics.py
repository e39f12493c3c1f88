"""/metrics: job counters and histograms by type, bounded labels, worker busy time."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.hub_fixtures import HubFactory, HubHandle
from tests.worker.conftest import running_worker, submit, wait_for_job


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    }


async def test_job_counters_and_histograms_by_type(hub: HubHandle) -> None:
    async with running_worker(hub.ws_url) as worker, hub.client() as http:
        for _ in range(3):
            await wait_for_job(http, await submit(http, type="render", payload={"duration": 0.1}))
        await wait_for_job(http, await submit(http, type="upscale", payload={"fail": True}))
        text = (await http.get("/metrics")).text
        worker_text = generate_latest(worker.metrics.registry).decode()
    assert samples(text, "empq_jobs_submitted_total") == {
        (("type", "render"),): 3.0,
        (("type", "upscale"),): 1.0,
    }
    assert (
        samples(text, "empq_jobs_finished_total")[(("outcome", "completed"), ("type", "render"))]
        == 3.0
    )
    # the failure will be retried: a retry, not (yet) a final outcome
    assert samples(text, "empq_job_retries_total") == {
        (("cause", "failed"), ("type", "upscale")): 1.0
    }
    waits = samples(text, "empq_job_queue_wait_seconds_count")
    assert waits[(("type", "render"),)] == 3.0
    runs = samples(text, "empq_job_run_seconds_sum")
    assert runs[(("outcome", "completed"), ("type", "render"))] >= 0.3
    assert samples(text, "process_resident_memory_bytes")[()] > 0
    # the worker: busy while it ran the jobs, idle otherwise
    busy = samples(worker_text, "empq_worker_busy_seconds_total")[()]
    idle = samples(worker_text, "empq_worker_idle_seconds_total")[()]
    assert busy >= 0.3
    assert idle > 0
    assert samples(worker_text, "process_cpu_seconds_total")[()] > 0


async def test_job_type_labels_are_bounded(hub_factory: HubFactory) -> None:
    async with hub_factory(metrics_max_job_types=2) as hub, hub.client() as http:
        for t in ("a", "b", "c", "d"):
            assert (await http.post("/api/jobs", json={"type": t})).status_code == 201
        text = (await http.get("/metrics")).text
    assert samples(text, "empq_jobs_submitted_total") == {
        (("type", "a"),): 1.0,
        (("type", "b"),): 1.0,
        (("type", "other"),): 2.0,
    }


async def test_queued_jobs_no_worker_can_run_show_by_service(hub: HubHandle) -> None:
    async with running_worker(hub.ws_url), hub.client() as http:
        await submit(http, type="clip", requirements={"service_type": "video"})
        text = (await http.get("/metrics")).text
    assert samples(text, "empq_unrunnable_jobs")[(("service_type", "video"),)] == 1.0
    assert samples(text, "empq_queued_jobs")[(("service_type", "video"),)] == 1.0
    assert samples(text, "empq_service_workers")[(("service_type", "simulation"),)] == 1.0
    assert samples(text, "empq_ready")[()] == 1.0
