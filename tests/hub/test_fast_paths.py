"""The hub's fast paths: one claim for many slots, and the claim made with the offer."""

from __future__ import annotations

import asyncio

from tests.support.hub_fixtures import HubHandle, RawPeer, raw_worker

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


async def test_submitted_job_is_offered_once_and_already_claimed_for_that_worker(
    hub: HubHandle,
) -> None:
    async with (
        hub.client() as http,
        raw_worker(hub.ws_url, "a") as a,
        raw_worker(hub.ws_url, "b") as b,
    ):
        # Run one job first, so the hub knows this queue (and both workers are idle).
        first = (await http.post("/api/jobs", json={"type": "t", "requirements": SIM})).json()
        offered = a if (await _offered_to(a, b)) == "a" else b
        done = await offered.request({"type": "claim_job"}, "job_assigned")
        assert done["job_id"] == first["job_id"]
        await offered.request(
            {
                "type": "complete_job",
                "job_id": done["job_id"],
                "claim_token": done["claim_token"],
                "result": {},
            },
            "job_completed_ack",
        )
        a.history.clear()
        b.history.clear()
        r = await http.post("/api/jobs", json={"type": "t", "requirements": SIM})
        assert r.status_code == 201
        body = r.json()
        assert body["status"] == "queued"
        assert body["position"] == 1
        job_id = body["job_id"]
        who = await _offered_to(a, b)
        peer, other = (a, b) if who == "a" else (b, a)
        # The job is already held for the worker it was offered to ...
        rec = (await http.get(f"/api/jobs/{job_id}")).json()
        assert rec["status"] == "assigned"
        assert rec["worker_id"] == who
        # ... and its claim (for as many slots as it likes) is answered with it at once.
        got = await peer.request({"type": "claim_job", "max_jobs": 3}, "job_assigned")
        assert got["job_id"] == job_id
        assert got["claim_remaining"] == 0
        await peer.request(
            {
                "type": "complete_job",
                "job_id": job_id,
                "claim_token": got["claim_token"],
                "result": {"ok": True},
            },
            "job_completed_ack",
        )
        # Nobody else was offered it, then or when its event came back from the stream.
        await other.request({"type": "ping"}, "pong")
        assert other.taken("job_available") == []
        assert len(peer.taken("job_available")) == 1
        assert (await http.get(f"/api/jobs/{job_id}")).json()["result"] == {"ok": True}
        # Both claims count in the claim latency histogram, the one answered from memory too.
        assert "empq_claim_latency_seconds_count 2.0" in (await http.get("/metrics")).text


async def test_a_worker_that_never_claims_its_offer_loses_it(hub: HubHandle) -> None:
    async with (
        hub.client() as http,
        raw_worker(hub.ws_url, "idle") as w,
        RawPeer.connect(hub.ws_url) as monitor,
    ):
        first = (await http.post("/api/jobs", json={"type": "t", "requirements": SIM})).json()
        a = await w.request({"type": "claim_job"}, "job_assigned")
        assert a["job_id"] == first["job_id"]
        await w.request(
            {
                "type": "complete_job",
                "job_id": a["job_id"],
                "claim_token": a["claim_token"],
                "result": {},
            },
            "job_completed_ack",
        )
        await monitor.request(
            {"type": "subscribe_job_notifications"}, "job_notifications_subscribed"
        )
        job_id = (await http.post("/api/jobs", json={"type": "t", "requirements": SIM})).json()[
            "job_id"
        ]
        await w.expect("job_available", where=lambda m: m["job_id"] == job_id)
        assert (await http.get(f"/api/jobs/{job_id}")).json()["status"] == "assigned"
        # The worker ignores the offer. The job claimed for it goes back in line after
        # the offer's hold (2 s), not the claim timeout (30 s), and without losing an
        # attempt: it never reached the worker.
        back = await monitor.expect(
            "job_update",
            within=5,
            where=lambda m: (
                m.get("job_id") == job_id
                and m.get("status") == "queued"
                and m.get("previous_status") == "assigned"
            ),
        )
        assert back["attempts"] == 0
        rec = (await http.get(f"/api/jobs/{job_id}")).json()
        assert rec["status"] == "queued"
        assert rec["attempts"] == 0
        # Its next claim (a worker's fallback poll) gets it the ordinary way.
        got = await w.request({"type": "claim_job"}, "job_assigned")
        assert got["job_id"] == job_id


async def _offered_to(a: RawPeer, b: RawPeer) -> str:
    """Which of two raw workers got the next `job_available` ("a" or "b")."""
    ta = asyncio.create_task(a.expect("job_available"))
    tb = asyncio.create_task(b.expect("job_available"))
    done, pending = await asyncio.wait({ta, tb}, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    return "a" if ta in done else "b"
