"""Fixtures for the core: a broker on the session's Redis, with a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from empq.broker import Broker
from empq.config import BrokerSettings


@dataclass
class FakeClock:
    """A clock in ms that only moves when the test says so (for timeouts and back-off)."""

    now: int = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(redis_url: str) -> BrokerSettings:
    return BrokerSettings(redis_url=redis_url, retry_delays=[5, 15, 30], claim_timeout=30)


@pytest.fixture
async def broker(settings: BrokerSettings, clock: FakeClock) -> AsyncIterator[Broker]:
    b = await Broker.connect(settings, clock=clock)
    try:
        yield b
    finally:
        await b.close()
