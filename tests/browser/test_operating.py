"""Operating from the dashboard: find a job by id or prefix, bulk retry and cancel of the
jobs shown (with a confirmation), whole-number chart axes, last minute's throughput.

Every wait is Playwright's `expect(...)` or a hub reply: nothing sleeps to synchronise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Tab
from tests.browser.helpers import get_job, open_dashboard, row, submit
from tests.browser.raw_worker import raw_worker
from tests.support.hub_fixtures import HubHandle

pytestmark = pytest.mark.browser


async def test_search_by_prefix_narrows_the_table_and_a_full_id_opens_the_job(
    hub: HubHandle, tab: Tab
) -> None:
    page = await open_dashboard(tab, hub)
    ids = [await submit(hub) for _ in range(3)]
    for job_id in ids:
        await expect(row(page, job_id)).to_be_visible()
    # a prefix that only the second job has
    prefix = next(
        ids[1][:n]
        for n in range(1, 33)
        if not any(o.startswith(ids[1][:n]) for o in (ids[0], ids[2]))
    )
    await page.locator("#filter-id").fill(prefix.upper())  # ids are found in any case
    await expect(page.locator("tr.job-row")).to_have_count(1)
    await expect(row(page, ids[1])).to_be_visible()
    await expect(page.locator("#jobs-shown")).to_have_text("1 shown")
    # the whole id, then Enter: the job's detail opens
    await page.locator("#filter-id").fill(ids[2])
    await page.locator("#filter-id").press("Enter")
    await expect(page.locator("#detail")).to_be_visible()
    await expect(page.locator("#detail-title")).to_contain_text(ids[2][:8])
    await page.locator("#detail-close").click()
    await page.locator("#filter-id").fill("")
    await expect(page.locator("tr.job-row")).to_have_count(3)
    assert tab.problems == []


async def test_bulk_cancel_then_retry_the_filtered_jobs_after_confirming(
    hub: HubHandle, tab: Tab, artifacts_dir: Path
) -> None:
    page = await open_dashboard(tab, hub)
    batch = [await submit(hub, type="upscale") for _ in range(3)]
    other = await submit(hub, type="render")
    await expect(row(page, other)).to_be_visible()
    await page.locator("#filter-type").fill("upscale")
    await page.locator("#filter-type").press("Enter")
    await expect(page.locator("tr.job-row")).to_have_count(3)
    cancel = page.locator("#bulk-cancel")
    await expect(cancel).to_have_text("Cancel 3")
    await expect(page.locator("#bulk-retry")).to_be_disabled()

    # The confirmation names the count; going back cancels nothing.
    await cancel.click()
    dialog = page.locator("#bulk-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#bulk-title")).to_have_text("Cancel 3 jobs?")
    await expect(page.locator("#bulk-list li")).to_have_count(3)
    await page.screenshot(path=str(artifacts_dir / "dashboard-bulk-confirm.png"))
    await page.locator("#bulk-back").click()
    await expect(dialog).to_be_hidden()
    assert {(await get_job(hub, j))["status"] for j in batch} == {"queued"}

    await cancel.click()
    await page.locator("#bulk-go").click()
    for job_id in batch:
        await expect(row(page, job_id)).to_have_attribute("data-status", "cancelled")
    await expect(page.locator("#toasts")).to_contain_text("Cancelled 3 jobs")
    assert {(await get_job(hub, j))["status"] for j in batch} == {"cancelled"}
    assert (await get_job(hub, other))["status"] == "queued"  # not shown: not touched

    retry = page.locator("#bulk-retry")
    await expect(retry).to_have_text("Retry 3")
    await expect(cancel).to_be_disabled()
    await retry.click()
    await expect(page.locator("#bulk-title")).to_have_text("Retry 3 jobs?")
    await page.locator("#bulk-go").click()
    for job_id in batch:
        await expect(row(page, job_id)).to_have_attribute("data-status", "queued")
    assert {(await get_job(hub, j))["status"] for j in batch} == {"queued"}
    assert tab.problems == []


async def test_chart_axes_count_whole_jobs_and_throughput_counts_the_last_minute(
    hub: HubHandle, tab: Tab, artifacts_dir: Path
) -> None:
    page = await open_dashboard(tab, hub)
    for _ in range(5):  # 5 queued: an axis of quarters would read 1.25, 2.5 ...
        await submit(hub)
    await expect(page.locator("#stat-queued .card-value")).to_have_text("5")
    async with raw_worker(hub.ws_url, "gpu-tp") as worker:
        job = await worker.claim()
        await worker.complete(job)
    await expect(page.locator("#stat-throughput .card-value")).to_have_text("1/min")
    await expect(page.locator("#stat-queued .card-value")).to_have_text("4")
    labels = await page.locator("svg.chart text.axis").all_text_contents()
    numbers = [t for t in labels if t.replace(".", "").isdigit()]
    assert numbers, labels
    assert all(t.isdigit() for t in numbers), labels
    await page.screenshot(path=str(artifacts_dir / "dashboard-operating.png"))
    assert tab.problems == []


async def test_pause_and_resume_a_service_and_drain_a_worker_from_the_page(
    hub: HubHandle, tab: Tab
) -> None:
    page = await open_dashboard(tab, hub)
    async with raw_worker(hub.ws_url, "gpu-9") as worker:
        job_id = await submit(hub)
        item = page.locator('#services-list li[data-service="simulation"]')
        await expect(item).to_be_visible(timeout=10_000)  # listed within its refresh
        await item.locator('button[data-action="pause"]').click()
        await expect(item).to_have_attribute("data-paused", "true")
        async with hub.client() as http:
            listed = (await http.get("/api/services")).json()["services"]
            assert {"simulation"} <= {s["service_type"] for s in listed if s["paused"]}
            # Paused: a claim gets nothing, and the job stays queued.
            await worker.send("claim_job")
            await worker.expect("no_job_available")
            assert (await get_job(hub, job_id))["status"] == "queued"
        await item.locator('button[data-action="resume"]').click()
        await expect(item).to_have_attribute("data-paused", "false")
        await worker.send("claim_job")
        got = await worker.expect("job_assigned")
        assert got["job_id"] == job_id
        # Drain from the worker's card: the worker is told and shows draining.
        card = page.locator('#workers-live [data-worker-id="gpu-9"]')
        await card.locator('button[data-action="drain"]').click()
        await worker.expect("drain")
        await expect(card).to_have_attribute("data-status", "draining")
    assert tab.problems == []
