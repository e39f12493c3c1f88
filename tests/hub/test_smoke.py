"""The hub starts, answers health, and a raw worker gets a submitted job."""

from __future__ import annotations

from tests.support.hub_fixtures import HubHandle, RawPeer, raw_worker


async def test_health_ready_and_one_job_end_to_end(hub: HubHandle) -> None:
    async with hub.client() as http:
        assert (await http.get("/health")).status_code == 200
        assert (await http.get("/ready")).status_code == 200
        async with raw_worker(hub.ws_url, "w1") as w:
            r = await http.post(
                "/api/jobs", json={"type": "t", "requirements": {"service_type": "simulation"}}
            )
            assert r.status_code == 201, r.text
            job_id = r.json()["job_id"]
            offer = await w.expect("job_available")
            assert offer["job_id"] == job_id
            a = await w.request({"type": "claim_job", "worker_id": "w1"}, "job_assigned")
            await w.send(
                {
                    "type": "job_accepted_by_worker",
                    "job_id": job_id,
                    "claim_token": a["claim_token"],
                }
            )
            await w.request(
                {
                    "type": "complete_job",
                    "job_id": job_id,
                    "claim_token": a["claim_token"],
                    "result": {"ok": True},
                },
                "job_completed_ack",
            )
            job = (await http.get(f"/api/jobs/{job_id}")).json()
            assert job["status"] == "completed"
            assert job["result"] == {"ok": True}


async def test_ws_on_rest_port(hub: HubHandle) -> None:
    async with RawPeer.connect(hub.ws_on_http_url) as peer:
        assert (await peer.request({"type": "ping"}, "pong"))["type"] == "pong"
