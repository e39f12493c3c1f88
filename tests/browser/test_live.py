"""The dashboard follows the queue live: progress, workers, catch-up and reconnects.

Every wait is Playwright's `expect(...)` (it re-checks the page until the condition
holds or its timeout ends) or a hub reply: nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Route, expect

from empq.redis_server import free_port
from tests.browser.conftest import Tab
from tests.browser.helpers import (
    SIM,
    open_dashboard,
    row,
    submit,
)
from tests.browser.raw_worker import raw_worker
from tests.support.hub_fixtures import HubHandle

pytestmark = pytest.mark.browser


async def test_job_submitted_through_rest_appears_and_its_progress_bar_runs_to_done(
    hub: HubHandle, tab: Tab
) -> None:
    page = await open_dashboard(tab, hub)
    job_id = await submit(hub, priority=70, customer_id="acme")
    job_row = row(page, job_id)
    bar = job_row.get_by_role("progressbar")
    await expect(job_row).to_have_attribute("data-status", "queued")
    await expect(bar).to_have_attribute("aria-valuenow", "0")
    await expect(page.locator("#stat-queued .card-value")).to_have_text("1")
    await expect(page.locator('#band-bars [data-band="50-74"] .band-count')).to_have_text("1")

    async with raw_worker(hub.ws_url, "gpu-progress") as worker:
        job = await worker.claim()
        assert job["job_id"] == job_id
        for percent in (20, 45, 80):
            await worker.progress(job, percent)
            await expect(bar).to_have_attribute("aria-valuenow", str(percent))
            await expect(job_row).to_have_attribute("data-status", "in_progress")
        await expect(job_row).to_contain_text("gpu-progress")
        await worker.complete(job)

    await expect(job_row).to_have_attribute("data-status", "completed")
    await expect(bar).to_have_attribute("aria-valuenow", "100")
    await expect(page.locator("#stat-throughput .card-sub")).to_contain_text("1 done")
    assert tab.problems == []


async def test_worker_appears_with_its_health_and_disappears_when_it_leaves(
    hub: HubHandle, tab: Tab
) -> None:
    page = await open_dashboard(tab, hub)
    live_card = page.locator('#workers-live [data-worker-id="gpu-node-7"]')
    await expect(live_card).to_have_count(0)
    async with raw_worker(hub.ws_url, "gpu-node-7") as worker:
        await expect(live_card).to_be_visible()
        await expect(live_card).to_have_attribute("data-status", "idle")
        await expect(page.locator("#worker-count")).to_have_text("1")
        await worker.heartbeat([], status="idle")
        await expect(live_card.locator(".worker-connectors")).to_contain_text("simulation: healthy")
        await expect(live_card.locator(".hb-age")).to_contain_text("ago")
        await live_card.locator("details.caps summary").click()
        await expect(live_card.locator("details.caps")).to_contain_text("RTX 4090")
    await expect(live_card).to_have_count(0)
    await expect(page.locator("#worker-count")).to_have_text("0")
    await expect(page.locator('#workers-gone-list [data-worker-id="gpu-node-7"]')).to_have_count(1)
    assert tab.problems == []


async def test_jobs_table_filters_by_status_customer_and_type_and_pages_long_lists(
    hub: HubHandle, tab: Tab
) -> None:
    bulk = [{"type": "bulk", "requirements": SIM, "customer_id": "big-co"} for _ in range(103)]
    async with hub.client() as client:
        reply = await client.post("/api/jobs/batch", json={"jobs": bulk})
        assert reply.status_code == 201, reply.text
    upscale = await submit(hub, type="upscale", customer_id="acme")
    page = await open_dashboard(tab, hub)
    rows = page.locator("tr.job-row")
    await expect(rows).to_have_count(100)  # one page of the hub's list
    await page.locator("#jobs-more").click()
    await expect(rows).to_have_count(104)
    await expect(page.locator("#jobs-more")).to_be_hidden()

    await page.locator("#filter-customer").fill("acme")
    await page.locator("#job-filters button[type=submit]").click()
    await expect(rows).to_have_count(1)
    await expect(row(page, upscale)).to_be_visible()
    # A live job of another customer stays out of the filtered table.
    other = await submit(hub, type="upscale", customer_id="zeta")
    acme_too = await submit(hub, type="upscale", customer_id="acme")
    await expect(row(page, acme_too)).to_be_visible()
    await expect(row(page, other)).to_have_count(0)

    await page.locator("#job-filters button[type=reset]").click()
    await page.locator("#filter-type").fill("upscale")
    await page.locator("#filter-status").select_option("cancelled")
    await expect(rows).to_have_count(0)
    async with hub.client() as client:
        assert (await client.post(f"/api/jobs/{other}/cancel")).status_code == 200
    await expect(row(page, other)).to_have_attribute("data-status", "cancelled")
    await expect(rows).to_have_count(1)
    assert tab.problems == []


async def test_catches_up_on_what_happened_while_disconnected_without_a_reload(
    hub: HubHandle, tab: Tab
) -> None:
    page = await open_dashboard(tab, hub)
    before = await submit(hub)
    await expect(row(page, before)).to_be_visible()
    await page.evaluate("window.empqDashboard.live.stop()")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "offline")

    missed = await submit(hub, priority=90)
    async with raw_worker(hub.ws_url, "gpu-while-away") as worker:
        job = await worker.claim()
        assert job["job_id"] == missed
        await worker.progress(job, 60, "halfway")
        await expect(row(page, missed)).to_have_count(0)
        await page.evaluate("window.empqDashboard.live.start()")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        missed_row = row(page, missed)
        await expect(missed_row).to_have_attribute("data-status", "in_progress")
        await expect(missed_row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "60")
        away = page.locator('#workers-live [data-worker-id="gpu-while-away"]')
        await expect(away).to_be_visible()
        # The replayed events (`since`) fill the job's history, not just its row.
        await missed_row.locator("a.job-link").click()
        await expect(page.locator("#detail-events .timeline")).to_contain_text("halfway")
    assert tab.problems == []


async def test_reconnects_by_itself_when_the_hub_restarts_and_reloads_nothing(
    hub_factory: Any, tab: Tab
) -> None:
    port = free_port()  # the page's origin: the new hub must come back on it
    async with hub_factory(hub_port=port) as first:
        page = await open_dashboard(tab, first)
        before = await submit(first)
        await expect(row(page, before)).to_be_visible()
        await page.evaluate("window.marker = 'same page'")
    conn = page.locator("#conn")
    await expect(conn).not_to_have_attribute("data-state", "live")
    async with hub_factory(hub_port=port) as second:
        await expect(conn).to_have_attribute("data-state", "live", timeout=15_000)
        job_id = await submit(second)
        await expect(row(page, job_id)).to_have_attribute("data-status", "queued")
        await expect(row(page, before)).to_be_visible()
        assert await page.evaluate("window.marker") == "same page"
    # Only the refused connections while the hub was down may be logged.
    refused = ("WebSocket", "ERR_CONNECTION_REFUSED", "Failed to fetch")
    assert [p for p in tab.problems if not any(r in p for r in refused)] == []


async def test_keeps_up_with_a_burst_of_a_thousand_submissions(hub: HubHandle, tab: Tab) -> None:
    page = await open_dashboard(tab, hub)
    burst = [{"type": "burst", "requirements": SIM, "priority": i % 101} for i in range(1000)]
    async with hub.client() as client:
        reply = await client.post("/api/jobs/batch", json={"jobs": burst})
        assert reply.status_code == 201, reply.text
    last = await submit(hub, type="after-the-burst")
    await expect(row(page, last)).to_be_visible()
    await expect(page.locator("tr.job-row")).to_have_count(250)  # newest first, capped
    await expect(page.locator("#stat-queued .card-value")).to_have_text("1001")
    total = page.locator("#band-bars .band-count")
    assert sum([int(t) for t in await total.all_inner_texts()]) == 1001
    # Still responsive: the submit form opens at once.
    await page.locator("#open-submit").click()
    await expect(page.locator("#submit-dialog")).to_be_visible()
    assert tab.problems == []


async def test_a_burst_arriving_while_the_job_list_loads_stays_listed(
    hub: HubHandle, tab: Tab
) -> None:
    """The REST list is the newest page as it was when asked for; jobs that live events
    bring in before its reply lands are newer, and must not vanish when it does (CI saw
    the list fall from 250 rows to 100 under load)."""
    page = await open_dashboard(tab, hub)
    asked, release = asyncio.Event(), asyncio.Event()

    async def held(route: Route) -> None:
        reply = await route.fetch()  # the hub answers now, before the burst ...
        asked.set()
        await release.wait()  # ... and the page reads it after the burst's events
        await route.fulfill(response=reply)

    await page.route("**/api/jobs?*", held)
    # A reconnect refetches the list once the subscription is confirmed.
    await page.evaluate("window.empqDashboard.live.stop(); window.empqDashboard.live.start()")
    await asyncio.wait_for(asked.wait(), 10)
    burst = [{"type": "burst", "requirements": SIM} for _ in range(300)]
    async with hub.client() as client:
        assert (await client.post("/api/jobs/batch", json={"jobs": burst})).status_code == 201
    rows = page.locator("tr.job-row")
    await expect(rows).to_have_count(250)  # the events are in: newest first, capped
    await page.evaluate("window.listedBefore = window.empqDashboard.store.listed")
    release.set()
    await page.wait_for_function(
        "window.empqDashboard.store.listed !== window.listedBefore"
    )  # the stale page is applied
    await expect(rows).to_have_count(250)
    assert await page.evaluate("window.empqDashboard.store.jobOrder.length") == 300
    await page.unroute("**/api/jobs?*")
    assert tab.problems == []
