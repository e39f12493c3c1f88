"""The dashboard page itself: loads clean from the hub, fits 1280x800 and a phone, screenshots.

Every wait is Playwright's `expect(...)` (it re-checks the page until the condition
holds or its timeout ends) or a hub reply: nothing sleeps to synchronise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Tab, open_tab
from tests.browser.helpers import (
    open_dashboard,
    row,
    seed_busy_queue,
)
from tests.browser.raw_worker import raw_worker
from tests.support.hub_fixtures import HubHandle

pytestmark = pytest.mark.browser


async def test_page_loads_live_from_the_hub_with_no_console_errors_and_no_outside_requests(
    hub: HubHandle, tab: Tab
) -> None:
    foreign: list[str] = []
    own = (hub.http_url, hub.http_url.replace("http://", "ws://"))
    tab.page.on("request", lambda r: None if r.url.startswith(own) else foreign.append(r.url))
    for path in ("/", "/dashboard"):
        page = await open_dashboard(tab, hub, path)
        await expect(page).to_have_title("empq · queue monitor")
        await expect(page.locator("#stat-queued .card-value")).to_have_text("0")
        await expect(page.locator("#band-bars .band-row")).to_have_count(4)
        await expect(page.locator("#queue-chart svg")).to_be_visible()
        await expect(page.locator("#workers-live")).to_contain_text("No workers connected")
    assert tab.problems == []
    assert foreign == []


async def test_screenshot_at_1280x800_shows_queue_workers_and_live_progress(
    hub: HubHandle, tab: Tab, artifacts_dir: Path
) -> None:
    page = await open_dashboard(tab, hub)
    await seed_busy_queue(hub)
    async with (
        raw_worker(hub.ws_url, "gpu-a100-1") as w1,
        raw_worker(hub.ws_url, "gpu-4090-2") as w2,
    ):
        done = await w1.claim()
        await w1.progress(done, 100)
        await w1.complete(done)
        running = await w1.claim()
        await w1.progress(running, 65, "sampling 13/20")
        other = await w2.claim()
        await w2.progress(other, 30, "loading model")
        await w1.heartbeat([running["job_id"]])
        await w2.heartbeat([other["job_id"]])
        await expect(row(page, running["job_id"]).get_by_role("progressbar")).to_have_attribute(
            "aria-valuenow", "65"
        )
        await expect(page.locator("#workers-live .worker")).to_have_count(2)
        await expect(page.locator(".worker-connectors .health.good")).to_have_count(2)
        await expect(page.locator("#stat-queued .card-value")).to_have_text("3")
        await expect(page.locator("#stat-running .card-value")).to_have_text("2")
        await expect(page.locator("#stat-throughput .card-sub")).to_contain_text("1 done")
        await page.screenshot(path=str(artifacts_dir / "dashboard.png"))
    assert tab.problems == []


async def test_usable_on_a_phone_without_sideways_scrolling(
    hub: HubHandle, browser: Any, artifacts_dir: Path
) -> None:
    phone = await open_tab(browser, 390, 844)
    try:
        page = await open_dashboard(phone, hub)
        await seed_busy_queue(hub)
        await expect(page.locator("tr.job-row")).to_have_count(6)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        await expect(page.locator("#open-submit")).to_be_in_viewport()
        await page.locator("tr.job-row a.job-link").first.click()
        detail_box = await page.locator("#detail").bounding_box()
        assert detail_box is not None
        assert detail_box["width"] <= 390
        await page.locator("#detail-close").click()
        # Actions reachable without scrolling sideways. Measured in the page in one go:
        # live updates re-render the rows, so a button found a moment earlier may be
        # gone by the time its box is asked for.
        right = await page.wait_for_function(
            """() => {
                const b = document.querySelector('tr.job-row button[data-action="cancel"]');
                return b && b.getBoundingClientRect().width > 0
                    ? b.getBoundingClientRect().right : null;
            }"""
        )
        assert await right.json_value() <= 390
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(artifacts_dir / "dashboard-phone.png"), full_page=True)
        assert phone.problems == []
    finally:
        await phone.page.context.close()
