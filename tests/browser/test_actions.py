"""Steering the queue from the dashboard: submit, cancel, retry, job detail, API keys.

Every wait is Playwright's `expect(...)` (it re-checks the page until the condition
holds or its timeout ends) or a hub reply: nothing sleeps to synchronise.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.browser.conftest import Tab
from tests.browser.helpers import (
    get_job,
    open_dashboard,
    row,
    submit,
    tiny_png,
)
from tests.browser.raw_worker import raw_worker
from tests.support.hub_fixtures import HubHandle

pytestmark = pytest.mark.browser


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


async def test_a_failed_job_shows_its_error_and_retry_from_the_detail_queues_it_again(
    hub: HubHandle, tab: Tab
) -> None:
    page = await open_dashboard(tab, hub)
    job_id = await submit(hub, max_retries=0)
    async with raw_worker(hub.ws_url, "gpu-oom") as worker:
        job = await worker.claim()
        ack = await worker.fail(job, "CUDA out of memory", retry=False)
        assert ack["retry_scheduled"] is False
    await expect(row(page, job_id)).to_have_attribute("data-status", "failed")
    await row(page, job_id).locator("a.job-link").click()
    await expect(page.locator("#detail-result .error-box")).to_contain_text("CUDA out of memory")
    await expect(page.locator("#detail-result")).to_contain_text("out_of_memory")
    await page.locator('#detail button[data-action="retry"]').click()
    await expect(page.locator("#detail .detail-status .badge")).to_have_text("queued")
    await expect(row(page, job_id)).to_have_attribute("data-status", "queued")
    assert (await get_job(hub, job_id))["status"] == "queued"
    assert tab.problems == []


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
        # Queued, and no connected worker can run it: its place in line, and why no ETA.
        await expect(page.locator(".detail-queue")).to_have_text(
            "Position 1 · no ETA (no connected worker can run this job)"
        )
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
