"""What the dashboard tests share: opening the page, submitting through REST, finding rows."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import httpx
from playwright.async_api import Locator, Page, expect

from tests.browser.conftest import Tab
from tests.support.hub_fixtures import HubHandle

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


def row(page: Page, job_id: str) -> Locator:
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


async def seed_busy_queue(hub: HubHandle) -> list[str]:
    """A queue worth looking at: jobs in every band and a few customers."""
    ids = []
    for i, (prio, customer) in enumerate(
        [(95, "acme"), (80, "globex"), (60, "acme"), (55, None), (40, "initech"), (10, None)]
    ):
        ids.append(await submit(hub, priority=prio, customer_id=customer, payload={"n": i}))
    return ids
