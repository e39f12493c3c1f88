"""VRAM as a budget, seen from workers: claims never hold more than the worker's GPU has."""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack
from typing import Any

from tests.support.hub_fixtures import HubHandle, RawPeer, raw_worker

SIM = {"service_type": "simulation"}


def _gb(assigned: dict[str, Any]) -> float:
    return float(assigned["requirements"].get("hardware", {}).get("gpu_memory_gb") or 0)


async def test_a_claim_takes_only_jobs_that_fit_the_vram_left(hub: HubHandle) -> None:
    caps = {
        "services": ["simulation"],
        "hardware": {"gpu_memory_gb": 24},
        "performance": {"concurrent_jobs": 3},
    }
    async with hub.client() as http, raw_worker(hub.ws_url, "w", caps) as w:
        jobs = [
            {"type": "t", "priority": p, "requirements": {**SIM, "hardware": {"gpu_memory_gb": g}}}
            for p, g in ((90, 12), (80, 20), (70, 8), (60, 4))
        ]
        ids = [
            j["job_id"]
            for j in (await http.post("/api/jobs/batch", json={"jobs": jobs})).json()["jobs"]
        ]
        await w.send({"type": "claim_job", "max_jobs": 3})
        got = [await w.expect("job_assigned") for _ in range(2)]
        # 12 GB, then the 20 GB job does not fit in the 12 left: 8 GB does; the 4 GB job
        # would fit too, but the third slot's claim is answered with what fits first.
        assert [a["job_id"] for a in got] == [ids[0], ids[2]]
        # 20 GB reserved of 24: another claim gets the 4 GB job, not the 20 GB one.
        third = await w.request({"type": "claim_job"}, "job_assigned")
        assert third["job_id"] == ids[3]
        # The explain of the waiting 20 GB job says why this worker cannot take it now.
        await w.send(
            {
                "type": "complete_job",
                "job_id": ids[0],
                "claim_token": got[0]["claim_token"],
                "result": {},
            }
        )
        await w.expect("job_completed_ack")
        # 12 GB left now (8 + 4 reserved): still no room for 20 GB ...
        await w.request({"type": "claim_job"}, "no_job_available")
        for a in (got[1], third):
            await w.send(
                {
                    "type": "complete_job",
                    "job_id": a["job_id"],
                    "claim_token": a["claim_token"],
                    "result": {},
                }
            )
            await w.expect("job_completed_ack")
        # ... and once everything is released it fits.
        last = await w.request({"type": "claim_job"}, "job_assigned")
        assert last["job_id"] == ids[1]


async def test_twenty_concurrent_claimers_never_exceed_a_workers_vram(hub: HubHandle) -> None:
    """A 24 GB, 3-slot worker claims (several claims in flight, and with each outcome)
    beside 19 other workers, over a mix of 8/12/20 GB jobs: it never holds more than 24 GB."""
    rng = random.Random(7)
    n_jobs = 150
    jobs = [
        {
            "type": "t",
            "priority": rng.choice([10, 50, 90]),
            "requirements": {**SIM, "hardware": {"gpu_memory_gb": rng.choice([8, 12, 20])}},
        }
        for _ in range(n_jobs)
    ]
    gpu24 = {
        "services": ["simulation"],
        "hardware": {"gpu_memory_gb": 24},
        "performance": {"concurrent_jobs": 3},
    }
    other = {"services": ["simulation"], "hardware": {"gpu_memory_gb": 24}}
    completed: set[str] = set()
    all_done = asyncio.Event()
    seen = {"peak_gb": 0.0, "jobs": 0, "concurrent": 0}

    async def run(w: RawPeer, slots: int, watch: bool) -> None:
        held: dict[str, float] = {}
        claim = {"type": "claim_job", "max_jobs": slots, "wait_seconds": 0.2}

        async def finish(a: dict[str, Any]) -> None:
            await asyncio.sleep(rng.uniform(0, 0.01))  # the job's run time
            # Its VRAM is free once it ends: the hub frees the slot on this message, and
            # may answer another claim before the completion's ack.
            held.pop(a["job_id"], None)
            await w.send(
                {
                    "type": "complete_job",
                    "job_id": a["job_id"],
                    "claim_token": a["claim_token"],
                    "result": {},
                    "claim_next": {"max_jobs": slots, "wait_seconds": 0.2},
                }
            )

        tasks: set[asyncio.Future[None]] = set()
        for _ in range(slots):  # several claims in flight at once
            await w.send(claim)
        while True:
            m = await w.recv(within=10)
            if m["type"] == "job_assigned":
                held[m["job_id"]] = _gb(m)
                if watch:
                    seen["jobs"] += 1
                    seen["peak_gb"] = max(seen["peak_gb"], sum(held.values()))
                    seen["concurrent"] = max(seen["concurrent"], len(held))
                    assert len(held) <= slots, ("SLOTS", held)
                    assert sum(held.values()) <= 24, held
                t = asyncio.ensure_future(finish(m))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            elif m["type"] == "job_completed_ack":
                completed.add(m["job_id"])
                if len(completed) == n_jobs:
                    all_done.set()
            elif m["type"] == "error":
                raise AssertionError(m)
            elif m["type"] == "no_job_available" and m.get("reason") in (None, "wait ended"):
                await w.send(claim)  # its claim ended with nothing: claim again

    async with hub.client() as http, AsyncExitStack() as stack:
        peers = [await stack.enter_async_context(raw_worker(hub.ws_url, "gpu24", gpu24))]
        for i in range(19):
            peers.append(await stack.enter_async_context(raw_worker(hub.ws_url, f"o{i}", other)))
        loops = [asyncio.ensure_future(run(peers[0], 3, True))]
        loops += [asyncio.ensure_future(run(p, 1, False)) for p in peers[1:]]
        r = await http.post("/api/jobs/batch", json={"jobs": jobs})
        assert r.status_code == 201
        try:
            finished = asyncio.ensure_future(all_done.wait())
            await asyncio.wait([finished, *loops], timeout=60, return_when="FIRST_COMPLETED")
            for loop in loops:
                if loop.done():
                    loop.result()  # a failed assertion inside a worker loop surfaces here
            assert all_done.is_set(), f"{len(completed)}/{n_jobs} completed"
        finally:
            for t in [*loops]:
                t.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
    # The 24 GB worker did its share, several jobs at a time, and never over budget.
    assert seen["jobs"] > 5
    assert seen["concurrent"] >= 2
    assert seen["peak_gb"] <= 24
