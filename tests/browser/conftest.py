"""Headless Chromium for the dashboard tests, driven by Playwright (never `playwright install`).

One browser per session (launching costs about a second); each test gets a fresh
context and page at 1280x800 that records console errors and uncaught exceptions.
The tests skip only when Debian's `/usr/bin/chromium` is missing and `CI` is unset:
in CI a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright, expect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous for a loaded 2-core CI box; a passing wait returns as soon as it holds.
expect.set_options(timeout=10_000)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip browser tests without Chromium, except in CI where they must run."""
    if CHROMIUM.exists() or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="/usr/bin/chromium is not installed (apt-get install chromium)")
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, for the whole session."""
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Tab:
    """A page plus what went wrong in it."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Console errors and uncaught exceptions, as text."""
        return self.console_errors + self.page_errors


async def open_tab(browser: Browser, width: int = 1280, height: int = 800) -> Tab:
    """A fresh context (own localStorage) with a page of this size that records errors."""
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    tab = Tab(page)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            tab.console_errors.append(msg.text)

    def on_error(err: Error) -> None:
        tab.page_errors.append(str(err))

    page.on("console", on_console)
    page.on("pageerror", on_error)
    return tab


@pytest.fixture
async def tab(browser: Browser) -> AsyncIterator[Tab]:
    """A 1280x800 page, closed after the test."""
    t = await open_tab(browser)
    try:
        yield t
    finally:
        await t.page.context.close()


@pytest.fixture
def artifacts_dir() -> Path:
    """`test-artifacts/` at the repository root (git-ignored), for screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
