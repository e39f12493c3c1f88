"""500 jobs while Redis is SIGKILLed and restarted twice under real worker processes.

A slow system test, run by its own step of `.ci/run` (`EMPQ_SYSTEM_TESTS=1 pytest
tests/system`), not by the default unit run. Redis keeps an append-only file with
`appendfsync always`, so a SIGKILL loses no acknowledged write. Expected: every job
completes exactly once, none is left `in_progress`, no attempt is spent, and the
workers take work again within seconds of Redis coming back.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx

from empq.redis_server import RedisServer
from tests.support.hub_fixtures import HubProcess, RawPeer
from tests.system.test_resilience import wait_ready
from tests.worker.conftest import WorkerProcess, start_worker_process

JOBS = 500
WORKERS = 3
SLOTS = 4
OUTAGE_SECONDS = 2.0
#: Redis is killed when this many jobs have completed (mid-run, twice).
KILL_AT = (120, 320)


async def _metric(http: httpx.AsyncClient, port: int, name: str) -> float:
    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_500_jobs_survive_redis_killed_and_restarted_twice(
    hub_process: Callable[..., AbstractAsyncContextManager[HubProcess]], tmp_path: Path
) -> None:
    redis = RedisServer(
        tmp_path / "redis", persistent=True, extra_args=["--appendfsync", "always"]
    ).start()
    procs: list[WorkerProcess] = []
    faults = 0
    recoveries: list[float] = []
    try:
        async with hub_process(EMPQ_REDIS_URL=redis.url) as hub:
            procs = [
                start_worker_process(
                    tmp_path,
                    hub.ws_url,
                    EMPQ_HTTP_PORT="0",
                    EMPQ_CONCURRENT_JOBS=str(SLOTS),
                    EMPQ_HEARTBEAT_INTERVAL="1",
                )
                for _ in range(WORKERS)
            ]
            ports = [await wait_ready(proc, within=30) for proc in procs]
            async with (
                httpx.AsyncClient(base_url=hub.http_url, timeout=30) as client,
                RawPeer.connect(hub.ws_url) as monitor,
            ):
                await monitor.request(
                    {"type": "subscribe_job_notifications"}, "job_notifications_subscribed"
                )
                jobs: list[dict[str, Any]] = [
                    {
                        "type": "sim",
                        "requirements": {"service_type": "simulation"},
                        "payload": {"duration": 0.15, "steps": 3},
                    }
                    for _ in range(JOBS)
                ]
                reply = await client.post("/api/jobs/batch", json={"jobs": jobs})
                assert reply.status_code == 201, reply.text
                ids = [j["job_id"] for j in reply.json()["jobs"]]

                seen: set[str] = set()

                async def completions(count: int, within: float) -> float:
                    """Until `count` distinct jobs were seen completing; when the last was."""
                    async with asyncio.timeout(within):
                        while len(seen) < count:
                            event = await monitor.expect("job_completed", within=within)
                            seen.add(event["job_id"])
                    return time.monotonic()

                for at in KILL_AT:
                    await completions(at, within=60)
                    redis.kill()
                    faults += 1
                    await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait
                    redis.start()
                    back = time.monotonic()
                    # Events flow again once Redis is back; the first completion after
                    # it says the workers are taking work again.
                    recoveries.append(await completions(len(seen) + 1, within=30) - back)
                # The rest; events cross Redis's stream, which the AOF kept.
                await completions(JOBS, within=120)
                records = [(await client.get(f"/api/jobs/{i}")).json() for i in ids]
            async with httpx.AsyncClient(timeout=5) as http:
                runs = [
                    await _metric(http, p, 'empq_worker_jobs_total{outcome="completed"}')
                    for p in ports
                ]
    finally:
        for proc in procs:
            proc.signal(signal.SIGTERM)
        for proc in procs:
            await proc.wait(within=30)
        redis.stop()

    statuses: dict[str, int] = {}
    for r in records:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    lost = JOBS - statuses.get("completed", 0)
    stuck = statuses.get("in_progress", 0) + statuses.get("accepted", 0)
    twice = int(sum(runs)) - JOBS
    print(
        f"\njobs {JOBS}, faults {faults}, lost {lost}, run twice {twice}, stuck {stuck}, "
        f"statuses {statuses}, back to work after {[round(r, 2) for r in recoveries]} s"
    )
    assert faults == len(KILL_AT)
    assert statuses == {"completed": JOBS}, statuses
    assert stuck == 0
    # An attempt may be spent by a claim whose script ran just before the kill: its
    # reply was lost with the connection, so no worker ever got the job, and the
    # hub's claim sweep requeues it after EMPQ_CLAIM_TIMEOUT counting an attempt (as
    # for any assignment never accepted). At most one claim per worker is in flight,
    # for at most its free slots.
    spent = {r["id"]: r["attempts"] for r in records if r["attempts"]}
    print(f"attempts spent: {len(spent)} {spent}")
    assert sum(spent.values()) <= faults * WORKERS * SLOTS, spent
    assert twice == 0, f"runs per worker {runs}"
    assert all(r < 10 for r in recoveries), recoveries
