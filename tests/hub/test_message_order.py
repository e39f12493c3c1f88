"""A connection's messages are handled concurrently, but never out of the order that matters."""

from __future__ import annotations

from tests.support.hub_fixtures import HubHandle, raw_worker

SIM = {"service_type": "simulation"}


async def test_claim_right_after_complete_sees_the_freed_slot(hub: HubHandle) -> None:
    """A one-slot worker that completes and claims back to back gets its next job."""
    async with hub.client() as http, raw_worker(hub.ws_url, "w1") as w:
        for _ in range(5):
            assert (
                await http.post("/api/jobs", json={"type": "t", "requirements": SIM})
            ).is_success
        first = await w.request({"type": "claim_job", "worker_id": "w1"}, "job_assigned")
        for _ in range(4):
            await w.send(
                {
                    "type": "complete_job",
                    "job_id": first["job_id"],
                    "claim_token": first["claim_token"],
                    "result": {},
                }
            )
            await w.send({"type": "claim_job", "worker_id": "w1"})
            await w.expect("job_completed_ack", where=lambda m, j=first["job_id"]: m["job_id"] == j)
            first = await w.expect("job_assigned")
        assert w.taken("no_job_available") == []
        assert w.taken("error") == []


async def test_reports_of_one_job_keep_their_order(hub: HubHandle) -> None:
    """accept, progress and complete sent without waiting all land, in that order."""
    async with hub.client() as http, raw_worker(hub.ws_url, "w1") as w:
        job_id = (await http.post("/api/jobs", json={"type": "t", "requirements": SIM})).json()[
            "job_id"
        ]
        a = await w.request({"type": "claim_job", "worker_id": "w1"}, "job_assigned")
        token = a["claim_token"]
        await w.send({"type": "job_accepted_by_worker", "job_id": job_id, "claim_token": token})
        for p in (10, 50, 90):
            await w.send(
                {
                    "type": "update_job_progress",
                    "job_id": job_id,
                    "claim_token": token,
                    "progress": p,
                }
            )
        await w.send(
            {"type": "complete_job", "job_id": job_id, "claim_token": token, "result": {"ok": True}}
        )
        await w.expect("job_completed_ack")
        assert w.taken("error") == []
        job = (await http.get(f"/api/jobs/{job_id}")).json()
        assert job["status"] == "completed"
        assert job["result"] == {"ok": True}
