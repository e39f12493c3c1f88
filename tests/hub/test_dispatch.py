"""`job_available` goes only to idle workers that can run the job, best score first."""

from __future__ import annotations

import asyncio

from tests.sdk.scripted import complete
from tests.support.hub_fixtures import HubHandle, raw_worker


async def test_offer_goes_only_to_capable_idle_worker(hub: HubHandle) -> None:
    async with (
        hub.client() as http,
        raw_worker(hub.ws_url, "comfy", {"services": ["comfyui"]}) as comfy,
        raw_worker(hub.ws_url, "sim") as sim,
    ):
        r = await http.post(
            "/api/jobs", json={"type": "t", "requirements": {"service_type": "comfyui"}}
        )
        offer = await comfy.expect("job_available")
        assert offer["job_id"] == r.json()["job_id"]
        assert offer["requirements_summary"] == {"service_type": "comfyui"}
        # The simulation worker is asked for something it can do, and gets only that.
        r2 = await http.post(
            "/api/jobs", json={"type": "s", "requirements": {"service_type": "simulation"}}
        )
        offer2 = await sim.expect("job_available")
        assert offer2["job_id"] == r2.json()["job_id"]
        assert sim.taken("job_available") == [offer2]


async def test_best_scoring_worker_is_offered_first(hub: HubHandle) -> None:
    big = {"services": ["comfyui"], "hardware": {"gpu_memory_gb": 80}}
    fit = {"services": ["comfyui"], "hardware": {"gpu_memory_gb": 24}}
    async with (
        hub.client() as http,
        raw_worker(hub.ws_url, "a-big", big) as a,
        raw_worker(hub.ws_url, "b-fit", fit) as b,
    ):
        r = await http.post(
            "/api/jobs",
            json={
                "type": "t",
                "requirements": {"service_type": "comfyui", "hardware": {"gpu_memory_gb": 20}},
            },
        )
        offer = await b.expect("job_available")
        assert offer["job_id"] == r.json()["job_id"]
        await a.request({"type": "ping"}, "pong")
        assert a.taken("job_available") == []


async def test_busy_worker_is_not_offered_a_job(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        await http.post("/api/jobs", json={"type": "t"})
        await w.expect("job_available")
        await w.request({"type": "claim_job"}, "job_assigned")
        await http.post("/api/jobs", json={"type": "t"})
        await w.request({"type": "ping"}, "pong")
        assert len(w.taken("job_available")) == 1


async def test_dispatch_is_fast_not_a_poll(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await http.post("/api/jobs", json={"type": "t"})
        await w.expect("job_available")
        await w.request({"type": "claim_job"}, "job_assigned")
        assert loop.time() - t0 < 0.25


async def test_claim_follows_priority_not_the_offer(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        low = (await http.post("/api/jobs", json={"type": "t", "priority": 10})).json()
        high = (await http.post("/api/jobs", json={"type": "t", "priority": 90})).json()
        a = await w.request({"type": "claim_job"}, "job_assigned")
        assert a["job_id"] == high["job_id"]
        assert low["job_id"] != a["job_id"]


async def test_equally_good_idle_workers_take_turns(hub: HubHandle) -> None:
    # Same capabilities, both idle after each job: the offers alternate instead of
    # the same worker getting every one while it keeps up.
    async with (
        hub.client() as http,
        raw_worker(hub.ws_url, "a") as a,
        raw_worker(hub.ws_url, "b") as b,
    ):
        offered_to = []
        for _ in range(4):
            job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
            waits = {
                asyncio.ensure_future(
                    w.expect("job_available", where=lambda m, j=job_id: m["job_id"] == j)
                ): w
                for w in (a, b)
            }
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            winner = waits[done.pop()]
            got = await winner.request({"type": "claim_job"}, "job_assigned")
            assert got["job_id"] == job_id
            await complete(winner, got, {})
            offered_to.append(winner)
        assert offered_to == [a, b, a, b]
