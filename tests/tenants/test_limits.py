"""Per-customer limits through a real hub: explain says so, and a freed slot is taken."""

from __future__ import annotations

from tests.support.hub_fixtures import HubFactory, raw_worker

SIM = {"service_type": "simulation"}


async def test_a_customer_at_its_limit_waits_and_explain_says_why(
    hub_factory: HubFactory,
) -> None:
    async with (
        hub_factory(customer_max_running={"A": 1}) as hub,
        hub.client() as http,
        raw_worker(hub.ws_url, "w1") as w1,
        raw_worker(hub.ws_url, "w2") as w2,
    ):
        first = (
            await http.post(
                "/api/jobs", json={"type": "t", "customer_id": "A", "requirements": SIM}
            )
        ).json()
        job = await w1.request({"type": "claim_job"}, "job_assigned")
        assert job["job_id"] == first["job_id"]
        second = (
            await http.post(
                "/api/jobs", json={"type": "t", "customer_id": "A", "requirements": SIM}
            )
        ).json()
        # w2 may run it but A holds its limit: the claim parks instead of taking it.
        await w2.send({"type": "claim_job", "wait_seconds": 10})
        explained = (await http.get(f"/api/jobs/{second['job_id']}/explain")).json()
        assert "at its limit of 1" in explained["summary"]
        assert explained["customer_limit"] == {"max_running": 1, "running": 1}
        assert explained["status"] == "queued"
        assert w2.taken("job_assigned") == []
        # w1 finishes: A's slot is free, and the parked claim of w2 takes the job.
        await w1.request(
            {
                "type": "complete_job",
                "job_id": job["job_id"],
                "claim_token": job["claim_token"],
                "result": {},
            },
            "job_completed_ack",
        )
        got = await w2.expect("job_assigned", within=5)
        assert got["job_id"] == second["job_id"]
