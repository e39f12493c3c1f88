"""A hub on `redis+sentinel://` follows a failover: the primary is SIGKILLed mid-run,
the sentinels promote the replica, and every job the hub acknowledged completes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from empq.redis_client import make_client
from tests.system.sentinel import start_sentinel_set
from tests.system.support import (
    Worker,
    completed_count,
    job_states,
    report,
    sim_jobs,
    start_hubs,
    start_worker,
    stats_of,
    submit_all,
    until,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

JOBS = 200
WORKERS = 2


async def test_sentinel_url_reaches_the_primary_and_after_failover_the_new_one(
    tmp_path: Path,
) -> None:
    rs = await start_sentinel_set(tmp_path)
    try:
        client = make_client(rs.url)
        try:
            await client.set("k", "before")
            # WAIT: the write is on the replica before this goes on (what a
            # deployment gets from WAIT, see docs/deployment.md)
            assert await client.execute_command("WAIT", 1, 5000) == 1
            first = await rs.primary_port()
            next(s for s in rs.servers if s.port == first).kill()
            # the next command waits (retrying) through the failover, then writes to the
            # promoted replica, where the write made before the kill already is
            assert await asyncio.wait_for(client.get("k"), 30) == b"before"
            await client.set("k", "after")
            assert await rs.primary_port() != first
        finally:
            await client.aclose()
    finally:
        rs.stop()


async def test_hub_follows_a_sentinel_failover_and_loses_no_acknowledged_job(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    rs = await start_sentinel_set(tmp_path)
    workers: list[Worker] = []
    hubs = []
    try:
        hubs = await start_hubs(rs.url, tmp_path, 1, EMPQ_CLAIM_TIMEOUT="5", EMPQ_RETRY_DELAYS="0")
        hub = hubs[0]
        workers = [
            start_worker(tmp_path, hub.ws_url, hub.http_url, EMPQ_CONCURRENT_JOBS="4")
            for _ in range(WORKERS)
        ]
        for w in workers:
            await w.ready()
        async with httpx.AsyncClient(base_url=hub.http_url, timeout=10) as http:
            jobs = sim_jobs(JOBS, "sentinel", duration=0.3)
            ids, retried = await submit_all(http, jobs[: JOBS // 2])
            acked_before_kill = list(ids)
            await until(lambda: _ge(completed_count(http), 20), 60, "jobs completing")
            first = await rs.primary_port()
            killed_at = time.monotonic()
            next(s for s in rs.servers if s.port == first).kill()
            # submissions go on through the failover (retried with their keys)
            more, again = await submit_all(http, jobs[JOBS // 2 :], within=60)
            ids += more
            retried += again

            async def promoted() -> bool:
                return await rs.primary_port() != first

            await until(promoted, 30, "the sentinels promoting the replica")
            failover_s = time.monotonic() - killed_at
            await until(
                lambda: _ge(completed_count(http), JOBS),
                120,
                f"{JOBS} jobs completed after the failover",
                lambda: stats_of(http),
            )
            states = await job_states(http, ids)
            runs = sum([await w.completed() for w in workers])
        lost = sum(1 for j in ids if states.get(j, {}).get("status") != "completed")
        lost_acked = sum(
            1 for j in acked_before_kill if states.get(j, {}).get("status") != "completed"
        )
        report(
            "sentinel-failover",
            jobs=JOBS,
            acked_before_kill=len(acked_before_kill),
            kills=1,
            lost=lost,
            lost_acked_before_kill=lost_acked,
            double=int(runs) - JOBS,
            submit_retries=retried,
            failover_seconds=round(failover_s, 1),
            seconds=round(time.monotonic() - started, 1),
        )
        assert len(set(ids)) == JOBS
        assert lost_acked == 0
        assert lost == 0
        assert int(runs) == JOBS, f"{runs} runs for {JOBS} jobs"
    finally:
        for w in workers:
            await w.stop()
        for h in hubs:
            await h.stop()
        rs.stop()


async def _ge(count: object, than: int) -> bool:
    return int(await count) >= than  # type: ignore[misc]
