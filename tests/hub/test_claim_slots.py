"""One claim for many slots."""

from __future__ import annotations

from tests.support.hub_fixtures import HubHandle, raw_worker

SIM = {"service_type": "simulation"}


async def test_one_claim_fills_every_free_slot_and_says_how_many_follow(hub: HubHandle) -> None:
    caps = {"services": ["simulation"], "performance": {"concurrent_jobs": 4}}
    async with hub.client() as http, raw_worker(hub.ws_url, "w", caps) as w:
        jobs = [{"type": "t", "priority": p, "requirements": SIM} for p in (10, 90, 50)]
        r = await http.post("/api/jobs/batch", json={"jobs": jobs})
        ids = [j["job_id"] for j in r.json()["jobs"]]
        await w.send({"type": "claim_job", "max_jobs": 4})
        got = [await w.expect("job_assigned") for _ in range(3)]
        # Best first, and the count of those still to come tells the worker when the
        # claim is answered (three jobs for four slots: no fourth message).
        assert [a["job_id"] for a in got] == [ids[1], ids[2], ids[0]]
        assert [a["claim_remaining"] for a in got] == [2, 1, 0]
        assert len({a["claim_token"] for a in got}) == 3
        # The fourth slot's claim finds nothing left.
        await w.request({"type": "claim_job", "max_jobs": 4}, "no_job_available")
