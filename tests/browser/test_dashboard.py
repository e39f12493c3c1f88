"""The dashboard in a real headless Chromium against a real hub and Redis.

Every wait is Playwright's `expect(...)` (it re-checks the page until the condition
holds or its timeout ends) or a hub reply: nothing sleeps to synchronise.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from empq.redis_server import free_port
from tests.browser.conftest import Tab, open_tab
from tests.browser.raw_worker import raw_worker
from tests.support.hub_fixtures import HubHandle

pytestmark = pytest.mark.browser

SIM = {"service_type": "simulation"}


async def open_dashboard(tab: Tab, hub: Any, path: str = "/") -> Page:
    """Load the page and wait until its WebSocket is live."""
    page = tab.page
    await page.goto(hub.http_url + path)
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    return page


async def submit(hub: Any, headers: dict[str, str] | None = None, **fields: Any) -> str:
    """Submit a job through the REST API; returns its id."""
    body = {"type": "simulation", "requirements": SIM, **fields}
    async with httpx.AsyncClient(base_url=hub.http_url, headers=headers or {}) as client:
        reply = await client.post("/api/jobs", json=body)
    assert reply.status_code == 201, reply.text
    job_id: str = reply.json()["job_id"]
    return job_id


async def get_job(hub: HubHandle, job_id: str) -> dict[str, Any]:
    async with hub.client() as client:
        reply = await client.get(f"/api/jobs/{job_id}")
    assert reply.status_code == 200, reply.text
    job: dict[str, Any] = reply.json()
    return job


def row(page: Page, job_id: str) -> Any:
    return page.locator(f'tr.job-row[data-job-id="{job_id}"]')


def tiny_png(width: int = 8, height: int = 8) -> bytes:
    """A valid solid-colour PNG, so the preview has something real to decode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xd0\x40\x60" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


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


async def test_cancel_from_the_page_cancels_the_running_job_and_tells_its_worker(
    hub: HubHandle, tab: Tab
) -> None:
    page = await open_dashboard(tab, hub)
    job_id = await submit(hub)
    async with raw_worker(hub.ws_url, "gpu-cancel") as worker:
        job = await worker.claim()
        await worker.progress(job, 30)
        job_row = row(page, job_id)
        await expect(job_row).to_have_attribute("data-status", "in_progress")
        button = job_row.locator('button[data-action="cancel"]')
        await button.click()
        await expect(button).to_have_text("Confirm cancel")  # one stray click cancels nothing
        assert (await get_job(hub, job_id))["status"] == "in_progress"
        await button.click()
        await expect(job_row).to_have_attribute("data-status", "cancelled")
        told = await worker.expect("cancel_job")
        assert told["job_id"] == job_id
    assert (await get_job(hub, job_id))["status"] == "cancelled"
    await expect(row(page, job_id).locator('button[data-action="retry"]')).to_be_visible()
    assert tab.problems == []


async def test_retry_from_the_page_queues_a_cancelled_job_again(hub: HubHandle, tab: Tab) -> None:
    job_id = await submit(hub)
    async with hub.client() as client:
        assert (await client.post(f"/api/jobs/{job_id}/cancel")).status_code == 200
    page = await open_dashboard(tab, hub)
    await row(page, job_id).locator('button[data-action="retry"]').click()
    await expect(row(page, job_id)).to_have_attribute("data-status", "queued")
    assert (await get_job(hub, job_id))["status"] == "queued"


async def test_submit_form_checks_the_json_payload_and_shows_the_hubs_field_errors(
    hub: HubHandle, tab: Tab
) -> None:
    page = await open_dashboard(tab, hub)
    await page.locator("#open-submit").click()
    dialog = page.locator("#submit-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#submit-type")).to_have_value("simulation")
    await page.locator("#submit-payload").fill('{"duration": 1,')
    await expect(page.locator("#submit-errors")).to_contain_text("payload: invalid JSON")
    await expect(page.locator("#submit-go")).to_be_disabled()

    await page.locator("#submit-payload").fill('{"duration": 1, "steps": 4}')
    await page.locator("#submit-requirements").fill('{"service_type": "simulation", "gpus": 2}')
    await page.locator("#submit-priority").fill("77")
    await page.locator("#submit-customer").fill("form-co")
    await page.locator("#submit-go").click()
    await expect(page.locator("#submit-errors")).to_contain_text("requirements.gpus")
    async with hub.client() as client:
        assert (await client.get("/api/jobs")).json()["jobs"] == []  # nothing stored

    await page.locator("#submit-requirements").fill('{"service_type": "simulation"}')
    await page.locator("#submit-go").click()
    await expect(dialog).to_be_hidden()
    first_row = page.locator("tr.job-row").first
    await expect(first_row).to_have_attribute("data-status", "queued")
    job_id = await first_row.get_attribute("data-job-id")
    assert job_id
    job = await get_job(hub, job_id)
    assert (job["priority"], job["customer_id"]) == (77, "form-co")
    assert job["payload"] == {"duration": 1, "steps": 4}
    # The 422 reply logs a failed request in the console; nothing else may.
    assert [p for p in tab.problems if "422" not in p] == []


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


async def test_job_detail_shows_explain_history_fields_and_an_image_preview(
    hub: HubHandle, tab: Tab
) -> None:
    page = await open_dashboard(tab, hub)
    async with raw_worker(hub.ws_url, "comfy-only", services=["comfyui"]):
        job_id = await submit(hub, priority=60, customer_id="acme")
        await row(page, job_id).locator("a.job-link").click()
        detail = page.locator("#detail")
        await expect(detail).to_be_visible()
        await expect(page.locator("#detail-title")).to_have_text(job_id)
        explain = page.locator("#detail-explain")
        await expect(explain.locator(".explain-no")).to_contain_text("comfy-only")
        await expect(page.locator('#detail-fields [data-field="customer_id"]')).to_contain_text(
            "acme"
        )
        await expect(page.locator('#detail-fields [data-field="priority"]')).to_contain_text("60")

    async with raw_worker(hub.ws_url, "gpu-artist") as worker:
        job = await worker.claim()
        await worker.progress(job, 50, "sampling")
        async with httpx.AsyncClient(base_url=hub.http_url) as client:
            put = await client.put(
                f"/api/jobs/{job_id}/artifacts/out.png",
                content=tiny_png(),
                headers={"X-EMPQ-Claim-Token": job["claim_token"], "Content-Type": "image/png"},
            )
        assert put.status_code == 201, put.text
        await worker.complete(job, {"output_files": [put.json()["url"]], "seed": 42})

    await expect(page.locator("#detail .detail-status .badge")).to_have_text("completed")
    history = page.locator("#detail-events .timeline")
    await expect(history).to_contain_text("50%")
    await expect(history).to_contain_text("gpu-artist")
    image = page.locator("#detail-result img.artifact-img")
    await expect(image).to_be_visible()
    # Decoded, not just present: the artifact came through the API as a real PNG.
    await page.wait_for_function(
        "() => document.querySelector('#detail-result img.artifact-img')?.naturalWidth === 8"
    )
    await expect(page.locator("#detail-result pre.result")).to_contain_text('"seed": 42')
    await page.locator("#detail-close").click()
    await expect(page.locator("#detail")).to_be_hidden()
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


async def test_asks_for_the_api_key_again_when_refused_and_then_remembers_it(
    hub_factory: Any, tab: Tab
) -> None:
    async with hub_factory(api_keys=["s3cret-key"]) as secured:
        page = tab.page
        await page.goto(secured.http_url + "/")
        dialog = page.locator("#key-dialog")
        await expect(dialog).to_be_visible()
        await expect(page.locator("#key-reason")).to_contain_text("needs an API key")
        await page.locator("#key-input").fill("wrong-key")
        await page.locator("#key-input").press("Enter")
        await expect(page.locator("#key-reason")).to_contain_text("refused")
        await expect(dialog).to_be_visible()
        await page.locator("#key-input").fill("s3cret-key")
        await page.locator("#key-input").press("Enter")
        await expect(dialog).to_be_hidden()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        job_id = await submit(secured, headers={"Authorization": "Bearer s3cret-key"})
        await expect(row(page, job_id)).to_have_attribute("data-status", "queued")
        await page.reload()  # the key was kept: no second prompt
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        await expect(row(page, job_id)).to_be_visible()
        await expect(dialog).to_be_hidden()
        # Refused requests (401/403) are logged by the browser; nothing else may be.
        assert [p for p in tab.problems if "401" not in p and "403" not in p] == []


async def seed_busy_queue(hub: HubHandle) -> list[str]:
    """A queue worth looking at: jobs in every band and a few customers."""
    ids = []
    for i, (prio, customer) in enumerate(
        [(95, "acme"), (80, "globex"), (60, "acme"), (55, None), (40, "initech"), (10, None)]
    ):
        ids.append(await submit(hub, priority=prio, customer_id=customer, payload={"n": i}))
    return ids


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
        cancel = page.locator('tr.job-row button[data-action="cancel"]').first
        box = await cancel.bounding_box()  # actions reachable without scrolling sideways
        assert box is not None
        assert box["x"] + box["width"] <= 390
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(artifacts_dir / "dashboard-phone.png"), full_page=True)
        assert phone.problems == []
    finally:
        await phone.page.context.close()
