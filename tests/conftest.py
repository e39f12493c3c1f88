"""Shared fixtures: one real redis-server per test session, flushed before each test."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aredis

from empq.redis_server import RedisServer

pytest_plugins = ["tests.support.hub_fixtures"]

# Slow system tests (minutes, real process faults) run in their own CI step:
# `EMPQ_SYSTEM_TESTS=1 pytest tests/system`, and the fault tests marked `slow` elsewhere
# (a hub restart, Redis killed, SIGSTOP, a delivery leader killed: seconds each) with
# `EMPQ_SYSTEM_TESTS=1 pytest -m slow tests --ignore=tests/system`, so that the unit
# suite stays inside its five minutes on two cores.
SYSTEM_TESTS = os.environ.get("EMPQ_SYSTEM_TESTS") == "1"
collect_ignore = [] if SYSTEM_TESTS else ["system"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without EMPQ_SYSTEM_TESTS=1, leave out the tests marked `slow` (see above)."""
    if SYSTEM_TESTS:
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


def pytest_report_header(config: pytest.Config) -> str | None:
    if SYSTEM_TESTS:
        return None
    return "tests marked slow (real-process faults) are left out: EMPQ_SYSTEM_TESTS=1 runs them"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free port for the whole session."""
    with RedisServer(persistent=False) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(autouse=True)
def _flush_redis(request: pytest.FixtureRequest) -> None:
    """Every test that touches Redis starts from an empty database."""
    if "redis_url" not in request.fixturenames:
        return
    url = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)
    try:
        client.flushall()
    finally:
        client.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(autouse=True)
def _drop_empq_log_handler() -> Iterator[None]:
    """A command run in-process installs empq's log handler on the test's captured
    stderr; remove it afterwards so later tests do not log to a closed stream."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "empq"]:
        root.removeHandler(handler)
