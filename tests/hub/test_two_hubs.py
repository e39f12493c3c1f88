"""Two hubs on one Redis behave as one (CONTRACT §4, last paragraph)."""

from __future__ import annotations

from tests.support.hub_fixtures import HubFactory, RawPeer, raw_worker


async def test_events_and_dispatch_cross_hubs(hub_factory: HubFactory) -> None:
    async with (
        hub_factory() as one,
        hub_factory() as two,
        RawPeer.connect(one.ws_url) as monitor,
        raw_worker(two.ws_url, "w-two") as w,
        one.client() as http_one,
        two.client() as http_two,
    ):
        await monitor.request(
            {"type": "subscribe_job_notifications"}, "job_notifications_subscribed"
        )
        await monitor.request({"type": "subscribe_worker_updates"}, "subscription_confirmed")
        job_id = (await http_one.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        offer = await w.expect("job_available")
        assert offer["job_id"] == job_id
        a = await w.request({"type": "claim_job"}, "job_assigned")
        await w.request(
            {
                "type": "complete_job",
                "job_id": job_id,
                "claim_token": a["claim_token"],
                "result": {},
            },
            "job_completed_ack",
        )
        done = await monitor.expect("job_completed")
        assert done["job_id"] == job_id
        assert done["worker_id"] == "w-two"
        workers = (await http_one.get("/api/workers")).json()["workers"]
        assert [x["worker_id"] for x in workers] == ["w-two"]
        assert (await http_two.get(f"/api/jobs/{job_id}")).json()["status"] == "completed"


async def test_cancel_on_one_hub_stops_worker_on_the_other(hub_factory: HubFactory) -> None:
    async with (
        hub_factory() as one,
        hub_factory() as two,
        raw_worker(two.ws_url, "w") as w,
        one.client() as http,
    ):
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        await w.request({"type": "claim_job"}, "job_assigned")
        r = await http.post(f"/api/jobs/{job_id}/cancel")
        assert r.json()["status"] == "cancelled"
        stop = await w.expect("cancel_job")
        assert stop["job_id"] == job_id


async def test_silent_worker_on_one_hub_is_given_up_whichever_hub_watches(
    hub_factory: HubFactory,
) -> None:
    async with (
        hub_factory(heartbeat_timeout=0.5) as one,
        hub_factory(heartbeat_timeout=0.5) as two,
        RawPeer.connect(one.ws_url) as monitor,
        raw_worker(two.ws_url, "quiet") as w,
        one.client() as http,
    ):
        await monitor.request({"type": "subscribe_worker_updates"}, "subscription_confirmed")
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        a = await w.request({"type": "claim_job"}, "job_assigned")
        gone = await monitor.expect("worker_disconnected", within=5)
        assert gone["jobs_affected"] == [job_id]
        assert (await http.get(f"/api/jobs/{job_id}")).json()["status"] == "queued"
        err = await w.request(
            {
                "type": "complete_job",
                "job_id": job_id,
                "claim_token": a["claim_token"],
                "result": {},
            },
            "error",
        )
        assert err["error_code"] in ("NOT_REGISTERED", "STALE_CLAIM")
        await w.request(
            {
                "type": "register_worker",
                "worker_id": "quiet",
                "capabilities": {"services": ["simulation"]},
            },
            "worker_registered",
        )
        again = await w.request({"type": "claim_job"}, "job_assigned")
        assert again["job_id"] == job_id
