"""Background tasks: heartbeats, claim and job timeouts, retries, alerts (issue items 5)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aredis

from empq.hub.services import tasks
from tests.support.hub_fixtures import HubFactory, RawPeer, raw_worker


async def test_silent_worker_loses_its_jobs_and_monitors_hear(hub_factory: HubFactory) -> None:
    async with (
        hub_factory(heartbeat_timeout=0.5) as hub,
        hub.client() as http,
        RawPeer.connect(hub.ws_url) as mon,
        raw_worker(hub.ws_url, "quiet") as w,
    ):
        await mon.request({"type": "subscribe_worker_updates"}, "subscription_confirmed")
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        a = await w.request({"type": "claim_job"}, "job_assigned")
        await w.send(
            {
                "type": "job_accepted_by_worker",
                "job_id": job_id,
                "claim_token": a["claim_token"],
            }
        )
        gone = await mon.expect("worker_disconnected", within=5)
        assert gone["worker_id"] == "quiet"
        assert gone["jobs_affected"] == [job_id]
        assert gone["reason"] == "heartbeat timeout"
        job = (await http.get(f"/api/jobs/{job_id}")).json()
        assert job["status"] == "queued"
        assert job["attempts"] == 1
        # Its socket was still open: the hub says so and closes it, so the worker
        # registers afresh rather than heartbeating on a dead registration.
        bye = await w.expect("server_disconnect", within=5)
        assert "heartbeat timeout" in bye["reason"]
        # A late outcome, from the worker registered again, is refused.
        async with raw_worker(hub.ws_url, "quiet") as again:
            err = await again.request(
                {
                    "type": "complete_job",
                    "job_id": job_id,
                    "claim_token": a["claim_token"],
                    "result": {},
                },
                "error",
            )
            assert err["error_code"] in ("STALE_CLAIM", "INVALID_TRANSITION")


async def test_heartbeating_worker_keeps_its_jobs(hub_factory: HubFactory) -> None:
    async with (
        hub_factory(heartbeat_timeout=0.5) as hub,
        hub.client() as http,
        RawPeer.connect(hub.ws_url) as mon,
        raw_worker(hub.ws_url, "alive") as w,
        raw_worker(hub.ws_url, "quiet"),
    ):
        await mon.request({"type": "subscribe_worker_updates"}, "subscription_confirmed")
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        a = await w.request({"type": "claim_job"}, "job_assigned")
        await w.send(
            {"type": "job_accepted_by_worker", "job_id": job_id, "claim_token": a["claim_token"]}
        )
        # The silent worker's removal is the clock: until it happens, keep heartbeating.
        while True:
            await w.request({"type": "worker_heartbeat", "status": "busy"}, "worker_heartbeat_ack")
            try:
                gone = await mon.expect("worker_disconnected", within=0.1)
            except TimeoutError:
                continue
            break
        assert gone["worker_id"] == "quiet"
        assert (await http.get(f"/api/jobs/{job_id}")).json()["status"] == "accepted"
        assert (await http.get("/api/workers/alive")).json()["status"] == "busy"


async def test_unaccepted_assignment_returns_to_queue(hub_factory: HubFactory) -> None:
    async with (
        hub_factory(claim_timeout=0.3) as hub,
        hub.client() as http,
        RawPeer.connect(hub.ws_url) as mon,
        raw_worker(hub.ws_url, "slow") as w,
    ):
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        await mon.request(
            {"type": "subscribe_job", "job_id": job_id}, "job_notifications_subscribed"
        )
        await w.request({"type": "claim_job"}, "job_assigned")
        # (The submission's own `queued` event may reach the new subscriber too.)
        back = await mon.expect(
            "job_update",
            within=5,
            where=lambda m: m["status"] == "queued" and "previous_status" in m,
        )
        assert back["previous_status"] == "assigned"
        job = (await http.get(f"/api/jobs/{job_id}")).json()
        assert job["attempts"] == 1
        assert job["position"] == 1


async def test_job_past_its_timeout_is_marked_timeout(hub_factory: HubFactory) -> None:
    async with (
        hub_factory() as hub,
        hub.client() as http,
        RawPeer.connect(hub.ws_url) as mon,
        raw_worker(hub.ws_url, "w") as w,
    ):
        job_id = (
            await http.post(
                "/api/jobs",
                json={"type": "t", "max_retries": 0, "requirements": {"timeout_minutes": 0.005}},
            )
        ).json()["job_id"]
        await mon.request(
            {"type": "subscribe_job", "job_id": job_id}, "job_notifications_subscribed"
        )
        a = await w.request({"type": "claim_job"}, "job_assigned")
        await w.send(
            {"type": "job_accepted_by_worker", "job_id": job_id, "claim_token": a["claim_token"]}
        )
        failed = await mon.expect("job_failed", within=5)
        assert failed["status"] == "timeout"
        assert failed["will_retry"] is False
        assert (await http.get(f"/api/jobs/{job_id}")).json()["status"] == "timeout"


async def test_alerts_for_deep_queue_and_unrunnable_job(hub_factory: HubFactory) -> None:
    async with (
        hub_factory(alert_queue_depth=2, stats_interval=0.2) as hub,
        hub.client() as http,
        RawPeer.connect(hub.ws_url) as mon,
        raw_worker(hub.ws_url, "sim"),
    ):
        await mon.request({"type": "subscribe_job_notifications"}, "job_notifications_subscribed")
        await http.post(
            "/api/jobs", json={"type": "x", "requirements": {"service_type": "comfyui"}}
        )
        unrunnable = await mon.expect(
            "system_alert", within=5, where=lambda m: m["category"] == "unrunnable_job"
        )
        assert unrunnable["severity"] == "warning"
        assert unrunnable["details"]["job_type"] == "x"
        await http.post("/api/jobs", json={"type": "y"})
        deep = await mon.expect(
            "system_alert", within=5, where=lambda m: m["category"] == "queue_depth"
        )
        assert deep["details"]["queue_depth"] >= 2


async def test_a_retry_is_queued_again_when_its_backoff_ends_whichever_hub_failed_it(
    hub_factory: HubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The retries task's poll is made far longer than the test: only its wake-up on the
    # failure's event (seen by the lease holder's event pump) can requeue in time.
    monkeypatch.setattr(tasks, "RETRIES_POLL", 60.0)
    async with (
        hub_factory(retry_delays=[0.3]) as leader,
        hub_factory(retry_delays=[0.3]) as other,
        leader.client() as http,
        RawPeer.connect(leader.ws_url) as mon,
        raw_worker(other.ws_url, "w") as w,
    ):
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        await mon.request(
            {"type": "subscribe_job", "job_id": job_id}, "job_notifications_subscribed"
        )
        a = await w.request({"type": "claim_job"}, "job_assigned")
        await w.request(
            {
                "type": "fail_job",
                "job_id": job_id,
                "claim_token": a["claim_token"],
                "error": "CUDA out of memory",
            },
            "job_failed_ack",
        )
        failed = await mon.expect("job_failed", within=5)
        assert failed["will_retry"] is True
        failed_at = time.monotonic()
        back = await mon.expect(
            "job_update",
            within=5,
            where=lambda m: m["status"] == "queued" and m.get("previous_status") == "failed",
        )
        waited = time.monotonic() - failed_at
        assert back["job_id"] == job_id
        assert 0.2 <= waited < 3, waited  # the back-off is kept, and not overshot by the poll
        job = (await http.get(f"/api/jobs/{job_id}")).json()
        assert job["status"] == "queued"
        assert job["attempts"] == 1
        # The failure was handled by the hub that does not run the retries task.
        assert "retries" in leader.hub.leases.held
        assert "retries" not in other.hub.leases.held


async def test_an_idle_hub_leaves_redis_alone(hub_factory: HubFactory, redis_url: str) -> None:
    # Every background task of an idle hub polls at most about once a second: no event,
    # no retry and no delivery pending means no reason to ask Redis more often.
    r = aredis.Redis.from_url(redis_url)
    async with hub_factory():
        before = int((await r.info("stats"))["total_commands_processed"])
        t0 = time.monotonic()
        await asyncio.sleep(3)  # the measurement window, not a synchronisation
        after = int((await r.info("stats"))["total_commands_processed"])
        rate = (after - before - 1) / (time.monotonic() - t0)
    await r.aclose()
    assert rate < 50, f"an idle hub sent {rate:.0f} Redis commands a second"
