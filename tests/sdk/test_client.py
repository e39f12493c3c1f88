"""`AsyncClient` against a real hub: what a Python user of the SDK sees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from empq.errors import (
    AuthError,
    HubUnavailable,
    InvalidTransition,
    JobNotFound,
    ValidationError,
)
from empq.models import Job
from empq.redis_server import free_port
from empq.sdk import AsyncClient, WaitTimeout
from empq.status import JobStatus
from tests.sdk import scripted
from tests.support.hub_fixtures import HubFactory, HubHandle, raw_worker

SIM = {"service_type": "simulation"}


@pytest.fixture
async def client(hub: HubHandle) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(hub.http_url, poll_interval=2.0) as c:
        yield c


async def test_submit_returns_a_queued_job_with_its_place(client: AsyncClient) -> None:
    first = await client.submit(type="render", payload={"prompt": "a cat"}, requirements=SIM)
    second = await client.submit(type="render", priority=90, requirements=SIM)
    assert first.status == JobStatus.QUEUED
    assert first.status == "queued"  # a str enum, comparable to plain strings
    assert first.position == 1
    assert second.position == 1  # higher priority goes first
    stored = await client.get(first.id)
    assert stored.type == "render"
    assert stored.payload == {"prompt": "a cat"}
    assert stored.requirements.service_type == "simulation"
    assert stored.position == 2


async def test_submit_with_no_capable_worker_carries_a_warning(client: AsyncClient) -> None:
    job = await client.submit(type="render", requirements=SIM)
    assert job.warnings, "a job nobody can run should say so"


async def test_bad_fields_are_named_and_nothing_is_sent(client: AsyncClient) -> None:
    with pytest.raises(ValidationError) as caught:
        await client.submit(
            type="render", priority=300, requirements={"customer_isolation": "total"}, colour=1
        )
    fields = {e["field"] for e in caught.value.errors}
    assert {"priority", "requirements.customer_isolation", "colour"} <= fields
    assert len(await client.jobs()) == 0


async def test_unknown_job_raises_job_not_found(client: AsyncClient) -> None:
    with pytest.raises(JobNotFound) as caught:
        await client.get("no-such-job")
    assert caught.value.job_id == "no-such-job"


async def test_unreachable_hub_raises_hub_unavailable() -> None:
    async with AsyncClient(f"http://127.0.0.1:{free_port()}", retries=1) as c:
        with pytest.raises(HubUnavailable):
            await c.stats()


async def test_submit_many_is_all_or_nothing(client: AsyncClient) -> None:
    jobs = await client.submit_many(
        [{"type": "a", "requirements": SIM}, {"type": "b"}, {"type": "c", "priority": 10}]
    )
    assert [j.type for j in jobs] == ["a", "b", "c"]
    assert all(j.status == JobStatus.QUEUED for j in jobs)
    with pytest.raises(ValidationError):
        await client.submit_many([{"type": "d"}, {"type": "e", "max_retries": -1}])
    assert len(await client.jobs()) == 3


async def test_same_idempotency_key_returns_the_first_job(client: AsyncClient) -> None:
    first = await client.submit(type="render", idempotency_key="order-42")
    again = await client.submit(type="render", idempotency_key="order-42")
    assert again.id == first.id
    assert len(await client.jobs()) == 1


async def test_cancel_then_retry(client: AsyncClient) -> None:
    job = await client.submit(type="render", requirements=SIM)
    cancelled = await client.cancel(job.id)
    assert cancelled.status == JobStatus.CANCELLED
    with pytest.raises(InvalidTransition) as caught:
        await client.cancel(job.id)
    assert caught.value.job_id == job.id
    assert caught.value.status == "cancelled"
    requeued = await client.retry(job.id)
    assert requeued.status == JobStatus.QUEUED
    with pytest.raises(JobNotFound):
        await client.cancel("no-such-job")


async def test_jobs_filters_and_pages(client: AsyncClient) -> None:
    for n in range(3):
        await client.submit(type="render", customer_id="acme", priority=n)
    await client.submit(type="upscale", customer_id="globex")
    acme = await client.jobs(customer_id="acme")
    assert {j.customer_id for j in acme} == {"acme"}
    assert len(acme) == 3
    assert [j.type for j in await client.jobs(type="upscale")] == ["upscale"]
    page = await client.jobs(limit=2)
    assert len(page) == 2
    assert page.next_cursor
    rest = await client.jobs(limit=2, cursor=page.next_cursor)
    seen = {j.id for j in page} | {j.id for j in rest}
    assert len(seen) == 4
    assert len(await client.jobs(status="cancelled")) == 0


async def test_watch_follows_a_job_to_completion(hub: HubHandle, client: AsyncClient) -> None:
    job = await client.submit(type="render", requirements=SIM)
    snapshots: list[Job] = []
    first_seen = asyncio.Event()

    async def follow() -> None:
        async for snapshot in client.watch(job.id):
            snapshots.append(snapshot)
            first_seen.set()

    async with asyncio.TaskGroup() as tg:
        watcher = tg.create_task(follow())
        await asyncio.wait_for(first_seen.wait(), 5)
        async with raw_worker(hub.ws_url, "w-1") as peer:
            assigned = await scripted.take_job(peer)
            await scripted.progress(peer, assigned, 40, "denoising")
            await scripted.complete(peer, assigned, {"output_files": [], "seed": 7})
            await asyncio.wait_for(watcher, 10)
    assert snapshots[0].status == JobStatus.QUEUED
    final = snapshots[-1]
    assert final.status == JobStatus.COMPLETED
    assert final.result == {"output_files": [], "seed": 7}
    assert final.worker_id == "w-1"
    assert final.completed_at is not None
    statuses = [s.status for s in snapshots]
    print(statuses)
    assert statuses.index(JobStatus.QUEUED) < statuses.index(JobStatus.COMPLETED)


async def test_wait_returns_the_failed_job_when_retries_run_out(
    hub: HubHandle, client: AsyncClient
) -> None:
    job = await client.submit(type="render", requirements=SIM, max_retries=0)
    async with raw_worker(hub.ws_url, "w-1") as peer:
        assigned = await scripted.take_job(peer)
        waiting = asyncio.ensure_future(client.wait(job.id, timeout=10))
        await scripted.fail(peer, assigned, "out of memory", retry=True)
        final = await waiting
    assert final.status == JobStatus.FAILED
    assert final.error == "out of memory"
    assert final.attempts == 1


async def test_wait_gives_up_after_its_timeout(client: AsyncClient) -> None:
    job = await client.submit(type="render", requirements=SIM)
    with pytest.raises(WaitTimeout) as caught:
        await client.wait(job.id, timeout=0.3)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.job.status == JobStatus.QUEUED


async def test_watch_of_a_finished_job_yields_it_once(client: AsyncClient) -> None:
    job = await client.submit(type="render")
    await client.cancel(job.id)
    snapshots = [s async for s in client.watch(job.id)]
    assert [s.status for s in snapshots] == [JobStatus.CANCELLED]


async def test_workers_stats_and_explain(hub: HubHandle, client: AsyncClient) -> None:
    async with raw_worker(hub.ws_url, "gpu-1", {"services": ["comfyui"]}):
        job = await client.submit(type="render", requirements=SIM)
        workers = await client.workers()
        assert [w.worker_id for w in workers] == ["gpu-1"]
        assert workers[0].capabilities.services == ["comfyui"]
        assert (await client.worker("gpu-1")).worker_id == "gpu-1"
        stats = await client.stats()
        assert stats["jobs_by_status"]["queued"] == 1
        explanation = await client.explain(job.id)
    assert explanation.status == JobStatus.QUEUED
    assert explanation.position == 1
    assert explanation.matching_workers == []
    rejected = {r.worker_id: r.reasons for r in explanation.rejected_workers}
    assert rejected["gpu-1"], "the reason a worker cannot run the job is given"


async def test_subscribe_stats_streams_broadcasts(client: AsyncClient) -> None:
    await client.submit(type="render")
    stream = client.subscribe_stats(interval=0.2)
    try:
        first = await asyncio.wait_for(anext(stream), 5)
        second = await asyncio.wait_for(anext(stream), 5)
    finally:
        await stream.aclose()
    assert first["jobs_by_status"]["queued"] == 1
    assert "queue_depth" in second


async def test_api_key_is_required_and_sent(hub_factory: HubFactory) -> None:
    async with hub_factory(api_keys=["s3cret"]) as h:
        async with AsyncClient(h.http_url) as anonymous:
            with pytest.raises(AuthError):
                await anonymous.jobs()
        async with AsyncClient(h.http_url, api_key="wrong") as wrong:
            with pytest.raises(AuthError):
                await wrong.submit(type="render")
        async with AsyncClient(h.http_url, api_key="s3cret") as c:
            job = await c.submit(type="render")
            snapshots = c.watch(job.id, timeout=10)
            assert (await anext(snapshots)).status == JobStatus.QUEUED
            await c.cancel(job.id)  # the ending arrives over the authenticated WebSocket
            assert (await anext(snapshots)).status == JobStatus.CANCELLED
            await snapshots.aclose()


async def test_watch_keeps_following_through_a_retry(hub_factory: HubFactory) -> None:
    async with (
        hub_factory(retry_delays=[0.2]) as h,
        AsyncClient(h.http_url, poll_interval=2.0) as client,
        raw_worker(h.ws_url, "w-1") as peer,
    ):
        job = await client.submit(type="render", requirements=SIM, max_retries=1)
        snapshots: list[Job] = []

        async def follow() -> None:
            async for snapshot in client.watch(job.id, timeout=20):
                snapshots.append(snapshot)

        watcher = asyncio.ensure_future(follow())
        first_try = await scripted.take_job(peer)
        await scripted.fail(peer, first_try, "flaky GPU", retry=True)
        peer.pending.clear()
        await peer.expect("job_available")  # queued again once the back-off is over
        second_try = await scripted.take_job(peer)
        await scripted.complete(peer, second_try, {"output_files": []})
        await asyncio.wait_for(watcher, 20)
    statuses = [s.status for s in snapshots]
    # a failure with a retry scheduled is not an ending: the watch goes on to the real one
    failed_at = statuses.index(JobStatus.FAILED)
    assert JobStatus.QUEUED in statuses[failed_at:]
    assert statuses[-1] == JobStatus.COMPLETED
    assert snapshots[-1].attempts == 1
