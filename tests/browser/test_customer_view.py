"""The dashboard with a customer key: read-only, and only that customer's jobs."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Tab
from tests.browser.helpers import row, submit

pytestmark = pytest.mark.browser

OP = {"Authorization": "Bearer op-key"}


async def test_a_customer_key_sees_its_own_jobs_read_only(hub_factory: Any, tab: Tab) -> None:
    async with hub_factory(api_keys=["op-key", "a-key:customer=A"]) as hub:
        mine = await submit(hub, headers=OP, customer_id="A")
        other = await submit(hub, headers=OP, customer_id="B")
        page = tab.page
        await page.goto(hub.http_url + "/")
        await page.locator("#key-input").fill("a-key")
        await page.locator("#key-input").press("Enter")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        await expect(page.locator("#scope-label")).to_contain_text("customer A")
        await expect(row(page, mine)).to_be_visible()
        await expect(page.locator(".workers")).to_be_hidden()
        await expect(page.locator("#open-submit")).to_be_hidden()
        await expect(row(page, mine).locator("[data-action]")).to_be_hidden()
        # A's later job arrives live; B's never shows, before or after.
        later = await submit(hub, headers=OP, customer_id="A")
        await submit(hub, headers=OP, customer_id="B")
        await expect(row(page, later)).to_be_visible()
        assert await row(page, other).count() == 0
        await expect(page.locator("#key-dialog")).to_be_hidden()
        assert [p for p in tab.problems if "401" not in p] == []
