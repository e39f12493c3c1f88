"""Three hubs behind Debian's HAProxy on one Redis, SIGKILLed one at a time while jobs run.

Workers, the monitor and the client know only the balancer's address. The balancer's
configuration is deploy/haproxy/haproxy.cfg with this machine's ports and hubs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from empq.redis_server import RedisServer, free_port
from empq.sdk.client import AsyncClient
from tests.system.support import (
    WAIT,
    HAProxy,
    Worker,
    completed_count,
    job_states,
    report,
    sim_jobs,
    start_haproxy,
    start_hubs,
    start_worker,
    stats_of,
    submit_all,
    until,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

JOBS = 300
KILLS = 4
WORKERS = 3


async def _upload_artifact_through(lb_http: str, lb_ws: str, data: bytes) -> tuple[str, str]:
    """Run one job as a raw worker through the balancer, storing `data` as its artifact;
    the job id and the artifact's URL path."""
    async with httpx.AsyncClient(base_url=lb_http, timeout=10) as http:
        reply = await http.post(
            "/api/jobs", json={"type": "art", "requirements": {"service_type": "artifacts"}}
        )
        assert reply.status_code == 201, reply.text
        job_id = reply.json()["job_id"]
        async with connect(lb_ws) as ws:

            async def expect(mtype: str) -> dict[str, Any]:
                while True:
                    message: dict[str, Any] = json.loads(await ws.recv())
                    if message.get("type") == mtype:
                        return message

            await expect("connection_established")
            await ws.send(
                '{"type": "register_worker", "worker_id": "artifact-maker",'
                ' "capabilities": {"services": ["artifacts"]}}'
            )
            await expect("worker_registered")
            await ws.send('{"type": "claim_job", "worker_id": "artifact-maker"}')
            assigned = await expect("job_assigned")
            assert assigned["job_id"] == job_id
            put = await http.put(
                f"/api/jobs/{job_id}/artifacts/out.bin",
                content=data,
                headers={
                    "X-EMPQ-Claim-Token": assigned["claim_token"],
                    "Content-Type": "application/octet-stream",
                },
            )
            assert put.status_code == 201, put.text
            url = put.json()["url"]
            await ws.send(
                json.dumps(
                    {
                        "type": "complete_job",
                        "job_id": job_id,
                        "claim_token": assigned["claim_token"],
                        "result": {"output_files": [url]},
                    }
                )
            )
            await expect("job_completed_ack")
    assert url.startswith(f"{lb_http}/"), f"{url}: not the balancer's address"
    return job_id, httpx.URL(url).path


async def test_three_hubs_behind_haproxy_lose_nothing_when_killed_one_by_one(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    shared_artifacts = tmp_path / "shared-artifacts"  # stands for NFS / a shared volume
    # The balancer's ports are chosen first: every hub names it as its public URL, so
    # the artifact URLs it hands out lead to the balancer, not to itself.
    lb_rest, lb_ws = free_port(), free_port()
    with RedisServer(persistent=False) as redis:
        hubs = await start_hubs(
            redis.url,
            tmp_path,
            3,
            EMPQ_PUBLIC_URL=f"http://127.0.0.1:{lb_rest}",
            EMPQ_ARTIFACT_DIR=str(shared_artifacts),
            EMPQ_HEARTBEAT_TIMEOUT="20",
            EMPQ_CLAIM_TIMEOUT="5",
            EMPQ_RETRY_DELAYS="0",
            EMPQ_STATS_INTERVAL="0.5",
        )
        lb: HAProxy | None = None
        workers: list[Worker] = []
        monitor_seen: list[float] = []
        monitor: asyncio.Task[None] | None = None
        try:
            lb = await start_haproxy(tmp_path, hubs, lb_rest, lb_ws)
            workers = [
                start_worker(
                    tmp_path,
                    lb.ws_url,
                    lb.http_url,
                    EMPQ_CONCURRENT_JOBS="4",
                    EMPQ_LOG_LEVEL=os.environ.get("EMPQ_TEST_WORKER_LOG", "info"),
                )
                for _ in range(WORKERS)
            ]
            for w in workers:
                await w.ready()

            # A monitor through the balancer: the SDK's stats subscription, which
            # reconnects by itself when its hub goes.
            async def follow() -> None:
                async with AsyncClient(lb.http_url) as sdk:
                    async for _ in sdk.subscribe_stats(interval=0.5):
                        monitor_seen.append(time.monotonic())

            monitor = asyncio.create_task(follow())
            await until(lambda: _true(bool(monitor_seen)), WAIT, "first stats broadcast")

            art_data = b"artifact bytes \x00\x01" * 100
            art_job, art_path = await _upload_artifact_through(lb.http_url, lb.ws_url, art_data)

            async with httpx.AsyncClient(base_url=lb.http_url, timeout=10) as http:
                jobs = sim_jobs(JOBS, "lb", duration=1.0)
                first_ids, retried = await submit_all(http, jobs[: JOBS // 2])
                later: list[dict[str, Any]] = jobs[JOBS // 2 :]
                ids = list(first_ids)
                kills = idle_kills = 0
                for k in range(KILLS):
                    victim = hubs[k % len(hubs)]
                    done_before = await completed_count(http)
                    # the artifact job is done too; each kill waits for some progress
                    target = done_before + min(10, len(ids) + 1 - done_before)
                    await until(
                        lambda t=target: _ge(completed_count(http), t),
                        60,
                        "jobs completing before the next kill",
                        lambda: stats_of(http),
                    )
                    if await completed_count(http) >= len(ids) + 1:
                        idle_kills += 1  # every job so far done: this kill hits no running job
                    seen_before = len(monitor_seen)
                    regs_before = sum(w.registrations() for w in workers)
                    await victim.kill()
                    kills += 1
                    # submissions go on while a hub is dead
                    batch, later = later[: JOBS // 2 // KILLS], later[JOBS // 2 // KILLS :]
                    more, again = await submit_all(http, batch)
                    ids += more
                    retried += again
                    await until(
                        lambda s=seen_before: _true(len(monitor_seen) > s + 2),
                        WAIT,
                        "the monitor receiving stats again after a hub was killed",
                    )
                    await victim.start()
                    assert sum(w.registrations() for w in workers) >= regs_before
                more, again = await submit_all(http, later)
                ids += more
                retried += again
                assert len(ids) == JOBS
                assert len(set(ids)) == JOBS, "a retried submit made a second job"

                await until(
                    lambda: _ge(completed_count(http), JOBS + 1), 120, f"{JOBS} jobs completed"
                )
                states = await job_states(http, ids)
                runs = sum([await w.completed() for w in workers])
                lost = sum(1 for j in ids if states.get(j, {}).get("status") != "completed")
                double = int(runs) - JOBS
                reconnects = sum(w.registrations() for w in workers) - WORKERS

                # the artifact stored through one hub is served by every hub
                for hub in hubs:
                    got = await http.get(f"{hub.http_url}{art_path}")
                    assert got.status_code == 200, (hub.http_url, got.text)
                    assert got.content == art_data
                assert (await http.get(art_path)).content == art_data
                art_state = (await http.get(f"/api/jobs/{art_job}")).json()
                assert art_state["status"] == "completed"

            report(
                "haproxy-three-hubs",
                jobs=JOBS,
                hubs=len(hubs),
                kills=kills,
                kills_with_no_job_running=idle_kills,
                lost=lost,
                double=double,
                submit_retries=retried,
                worker_reconnects=reconnects,
                monitor_broadcasts=len(monitor_seen),
                seconds=round(time.monotonic() - started, 1),
            )
            assert lost == 0, {j: states.get(j, {}).get("status") for j in ids[:5]}
            assert double == 0, f"{runs} runs for {JOBS} jobs"
            assert reconnects >= 1, "no worker had to reconnect: no kill hit a worker's hub"
        finally:
            if monitor is not None:
                monitor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await monitor
            for w in workers:
                await w.stop()
            if lb is not None:
                await lb.stop()
            for hub in hubs:
                await hub.stop()


async def _true(value: bool) -> bool:
    return value


async def _gt(count: Any, than: int) -> bool:
    return int(await count) > than


async def _ge(count: Any, than: int) -> bool:
    return int(await count) >= than
