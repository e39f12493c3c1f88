"""The WebSocket protocol of CONTRACT §4, spoken raw on both endpoints."""

from __future__ import annotations

import json

from tests.support.hub_fixtures import HubHandle, RawPeer, raw_worker

SIM = {"service_type": "simulation"}


async def test_connect_says_hello_with_version(hub: HubHandle) -> None:
    async with RawPeer.connect(hub.ws_url) as peer:
        assert peer.hello["message"]
        assert peer.hello["server_version"]
        assert isinstance(peer.hello["timestamp"], int)


async def test_bad_messages_get_errors_and_the_socket_stays_open(hub: HubHandle) -> None:
    async with RawPeer.connect(hub.ws_url) as peer:
        await peer.send("{not json")
        err = await peer.expect("error")
        assert err["error_code"] == "INVALID_JSON"
        await peer.send("[1, 2]")
        assert (await peer.expect("error"))["error_code"] == "INVALID_MESSAGE"
        await peer.send({"type": "teleport"})
        unknown = await peer.expect("unknown")
        assert "teleport" in unknown["error"]
        await peer.send({"type": "submit_job", "job_type": "t", "priority": 500, "extra": 1})
        err = await peer.expect("error")
        assert err["error_code"] == "VALIDATION_ERROR"
        fields = {d["field"] for d in err["details"]}
        assert {"priority", "extra"} <= fields
        assert (await peer.request({"type": "ping"}, "pong"))["type"] == "pong"


async def test_ten_megabytes_accepted_larger_refused_socket_open(hub: HubHandle) -> None:
    async with RawPeer.connect(hub.ws_url) as peer:
        big = "x" * (10 * 1024 * 1024 - 200)
        ok = await peer.request(
            {"type": "submit_job", "job_type": "t", "payload": {"blob": big}}, "job_accepted"
        )
        assert ok["status"] == "queued"
        too_big = json.dumps(
            {
                "type": "submit_job",
                "job_type": "t",
                "payload": {"blob": "y" * (10 * 1024 * 1024 + 10)},
            }
        )
        await peer.send(too_big)
        err = await peer.expect("error")
        assert err["error_code"] == "MESSAGE_TOO_LARGE"
        assert (await peer.request({"type": "ping"}, "pong"))["type"] == "pong"


async def test_worker_must_register_first(hub: HubHandle) -> None:
    async with RawPeer.connect(hub.ws_url) as peer:
        err = await peer.request({"type": "claim_job", "worker_id": "w"}, "error")
        assert err["error_code"] == "NOT_REGISTERED"


async def test_full_worker_lifecycle_over_raw_protocol(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w1") as w:
        assert (await w.request({"type": "claim_job"}, "no_job_available"))["type"]
        job_id = (
            await http.post(
                "/api/jobs", json={"type": "t", "requirements": SIM, "customer_id": "c"}
            )
        ).json()["job_id"]
        a = await w.request({"type": "claim_job", "worker_id": "w1"}, "job_assigned")
        assert a["job_id"] == job_id
        assert a["job_type"] == "t"
        assert a["customer_id"] == "c"
        assert a["claim_timeout"] == 30
        for key in ("priority", "payload", "requirements", "workflow_id", "step_number"):
            assert key in a or key in ("workflow_id", "step_number")
        token = a["claim_token"]
        await w.send({"type": "job_accepted_by_worker", "job_id": job_id, "claim_token": token})
        await w.send(
            {
                "type": "update_job_progress",
                "job_id": job_id,
                "claim_token": token,
                "progress": 40,
                "message": "sampling",
            }
        )
        hb = await w.request(
            {"type": "worker_heartbeat", "status": "busy", "current_jobs": [job_id]},
            "worker_heartbeat_ack",
        )
        assert hb["next_heartbeat_expected"] > hb["timestamp"]
        # The heartbeat does not wait for the progress report before it: ask until the
        # hub has recorded it.
        for _ in range(100):
            job = (await http.get(f"/api/jobs/{job_id}")).json()
            if job["status"] != "accepted":
                break
        assert job["status"] == "in_progress"
        assert job["progress"] == 40
        assert job["worker_id"] == "w1"
        await w.request(
            {
                "type": "complete_job",
                "job_id": job_id,
                "claim_token": token,
                "result": {"n": 1},
                "processing_time": 0.5,
            },
            "job_completed_ack",
        )
        job = (await http.get(f"/api/jobs/{job_id}")).json()
        assert job["status"] == "completed"
        assert job["completed_at"]


async def test_stale_claim_token_is_refused_and_changes_nothing(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w1") as w:
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        a = await w.request({"type": "claim_job"}, "job_assigned")
        err = await w.request(
            {"type": "complete_job", "job_id": job_id, "claim_token": "wrong.w1", "result": {}},
            "error",
        )
        assert err["error_code"] == "STALE_CLAIM"
        assert err["job_id"] == job_id
        assert (await http.get(f"/api/jobs/{job_id}")).json()["status"] == "assigned"
        await w.send(
            {"type": "job_accepted_by_worker", "job_id": job_id, "claim_token": a["claim_token"]}
        )
        await w.request({"type": "ping"}, "pong")
        assert (await http.get(f"/api/jobs/{job_id}")).json()["status"] == "accepted"


async def test_fail_job_schedules_retry_then_finalises(hub_factory) -> None:  # type: ignore[no-untyped-def]
    async with (
        hub_factory(retry_delays="0") as hub,
        hub.client() as http,
        raw_worker(hub.ws_url, "w1") as w,
    ):
        job_id = (await http.post("/api/jobs", json={"type": "t", "max_retries": 1})).json()[
            "job_id"
        ]
        await w.expect("job_available")
        a = await w.request({"type": "claim_job"}, "job_assigned")
        ack = await w.request(
            {
                "type": "fail_job",
                "job_id": job_id,
                "claim_token": a["claim_token"],
                "error": "boom",
                "retry": True,
            },
            "job_failed_ack",
        )
        assert ack["retry_scheduled"] is True
        assert ack["retry_delay"] == 0
        await w.expect("job_available", within=5)
        a = await w.request({"type": "claim_job"}, "job_assigned")
        assert a["job_id"] == job_id
        ack = await w.request(
            {
                "type": "fail_job",
                "job_id": job_id,
                "claim_token": a["claim_token"],
                "error": "boom again",
                "retry": True,
                "error_details": {"error_type": "x"},
            },
            "job_failed_ack",
        )
        assert ack["retry_scheduled"] is False
        job = (await http.get(f"/api/jobs/{job_id}")).json()
        assert job["status"] == "failed"
        assert job["attempts"] == 2
        assert job["error"] == "boom again"


async def test_claim_gives_up_to_free_slots(hub: HubHandle) -> None:
    caps = {"services": ["simulation"], "performance": {"concurrent_jobs": 2}}
    async with hub.client() as http, raw_worker(hub.ws_url, "w1", caps) as w:
        await http.post("/api/jobs/batch", json={"jobs": [{"type": "t"}] * 3})
        await w.send({"type": "claim_job", "max_jobs": 5})
        first = await w.expect("job_assigned")
        second = await w.expect("job_assigned")
        assert first["job_id"] != second["job_id"]
        full = await w.request({"type": "claim_job", "max_jobs": 5}, "no_job_available")
        assert full["type"] == "no_job_available"
        assert len(w.taken("job_assigned")) == 2


async def test_update_capabilities_takes_effect_at_once(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w1", {"services": ["a1111"]}) as w:
        await http.post(
            "/api/jobs", json={"type": "t", "requirements": {"service_type": "comfyui"}}
        )
        await w.request({"type": "claim_job"}, "no_job_available")
        await w.send(
            {"type": "update_capabilities", "capability_changes": {"services": ["comfyui"]}}
        )
        a = await w.request({"type": "claim_job"}, "job_assigned")
        assert a["job_type"] == "t"
        worker = (await http.get("/api/workers/w1")).json()
        assert worker["capabilities"]["services"] == ["comfyui"]
        err = await w.request(
            {
                "type": "update_capabilities",
                "capability_changes": {"hardware": {"gpu_memory_gb": -1}},
            },
            "error",
        )
        assert "capability_changes.hardware.gpu_memory_gb" in err["error"]


async def test_disconnect_requeues_running_jobs_at_once(hub: HubHandle) -> None:
    async with hub.client() as http, RawPeer.connect(hub.ws_url) as monitor:
        await monitor.request({"type": "subscribe_worker_updates"}, "subscription_confirmed")
        async with raw_worker(hub.ws_url, "w1") as w:
            job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
            await w.request({"type": "claim_job"}, "job_assigned")
            await w.send({"type": "disconnect", "reason": "shutting down"})
            gone = await monitor.expect("worker_disconnected")
        assert gone["worker_id"] == "w1"
        assert gone["jobs_affected"] == [job_id]
        job = (await http.get(f"/api/jobs/{job_id}")).json()
        assert job["status"] == "queued"
        assert job["attempts"] == 0  # a graceful disconnect hands back (CONTRACT §9)
        worker = (await http.get("/api/workers/w1")).json()
        assert worker["status"] == "offline"


async def test_client_submit_status_and_cancel_reach_the_worker(hub: HubHandle) -> None:
    async with raw_worker(hub.ws_url, "w1") as w, RawPeer.connect(hub.ws_url) as c:
        reg = await c.request(
            {"type": "register_client", "client_type": "job_client", "client_id": "me"},
            "client_registered",
        )
        assert reg["client_id"] == "me"
        assert reg["assigned_connection_id"]
        acc = await c.request(
            {"type": "submit_job", "job_type": "t", "priority": 70, "requirements": SIM},
            "job_accepted",
        )
        job_id = acc["job_id"]
        assert acc["status"] == "queued"
        assert acc["position"] == 1
        assert acc["notified_workers"] == 1
        a = await w.request({"type": "claim_job"}, "job_assigned")
        await w.send(
            {"type": "job_accepted_by_worker", "job_id": job_id, "claim_token": a["claim_token"]}
        )
        # The accept travels on the worker's socket, the status request on ours: ask
        # until the hub has recorded it.
        for _ in range(100):
            status = await c.request(
                {"type": "request_job_status", "job_id": job_id}, "response_job_status"
            )
            if status["status"] != "assigned":
                break
        assert status["status"] == "accepted"
        assert status["worker_id"] == "w1"
        cancelled = await c.request(
            {"type": "cancel_job", "job_id": job_id, "reason": "changed my mind"}, "job_cancelled"
        )
        assert cancelled["status"] == "cancelled"
        assert isinstance(cancelled["cancelled_at"], int)
        stop = await w.expect("cancel_job")
        assert stop["job_id"] == job_id
        err = await c.request({"type": "cancel_job", "job_id": job_id}, "error")
        assert err["error_code"] == "INVALID_TRANSITION"
        err = await c.request({"type": "request_job_status", "job_id": "nope"}, "error")
        assert err["error_code"] == "JOB_NOT_FOUND"


async def test_job_subscriptions_deliver_updates_with_filters(hub: HubHandle) -> None:
    async with (
        hub.client() as http,
        RawPeer.connect(hub.ws_url) as one,
        RawPeer.connect(hub.ws_on_http_url) as acme,
        raw_worker(hub.ws_url, "w1") as w,
    ):
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        other = (
            await http.post("/api/jobs", json={"type": "t", "customer_id": "acme", "priority": 10})
        ).json()["job_id"]
        sub = await one.request(
            {"type": "subscribe_job", "job_id": job_id}, "job_notifications_subscribed"
        )
        assert sub["job_id"] == job_id
        sub = await acme.request(
            {"type": "subscribe_job_notifications", "filters": {"customer_id": "acme"}},
            "job_notifications_subscribed",
        )
        assert sub["subscription_id"]
        assert sub["filters_applied"] == {"customer_id": "acme"}
        for expected in (job_id, other):
            a = await w.request({"type": "claim_job"}, "job_assigned")
            assert a["job_id"] == expected
            await w.request(
                {
                    "type": "complete_job",
                    "job_id": expected,
                    "claim_token": a["claim_token"],
                    "result": {"v": expected},
                },
                "job_completed_ack",
            )
        upd = await one.expect("job_update", where=lambda m: m["status"] == "assigned")
        assert upd["job_id"] == job_id
        assert upd["worker_id"] == "w1"
        done = await one.expect("job_completed")
        assert done["result"] == {"v": job_id}
        done = await acme.expect("job_completed")
        assert done["job_id"] == other
        events = ("job_update", "job_completed", "job_failed")
        assert all(m.get("job_id") == other for m in acme.history if m["type"] in events)
        assert all(
            m.get("job_id") == job_id
            for m in one.history
            if m["type"] in ("job_update", "job_completed")
        )


async def test_monitor_catches_up_after_reconnect(hub: HubHandle) -> None:
    async with hub.client() as http:
        async with RawPeer.connect(hub.ws_url) as mon:
            await mon.request(
                {"type": "subscribe_job_notifications"}, "job_notifications_subscribed"
            )
            first = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
            seen = await mon.expect("job_update", where=lambda m: m["job_id"] == first)
        missed = (await http.post("/api/jobs", json={"type": "t2"})).json()["job_id"]
        async with RawPeer.connect(hub.ws_url) as mon:
            await mon.request(
                {"type": "subscribe_job_notifications", "since": seen["event_id"]},
                "job_notifications_subscribed",
            )
            caught = await mon.expect("job_update")
            assert caught["job_id"] == missed
            assert caught["job_type"] == "t2"


async def test_stats_subscription_and_request(hub: HubHandle) -> None:
    async with RawPeer.connect(hub.ws_url) as mon:
        conf = await mon.request(
            {"type": "subscribe_stats", "interval_seconds": 0.2}, "subscription_confirmed"
        )
        assert conf["subscription_type"] == "stats"
        assert conf["update_interval"] == 0.2
        first = await mon.expect("stats_broadcast")
        second = await mon.expect("stats_broadcast", within=2)
        assert second["timestamp"] >= first["timestamp"]
        assert "jobs_by_status" in first
        assert "workers_by_status" in first
        await mon.send({"type": "subscribe_stats", "enabled": False})
        await mon.expect("subscription_confirmed")
        asked = await mon.request({"type": "request_stats"}, "stats_broadcast")
        assert asked["queue_depth"] == 0


async def test_worker_updates_reach_monitors(hub: HubHandle) -> None:
    async with RawPeer.connect(hub.ws_url) as mon:
        conf = await mon.request({"type": "subscribe_worker_updates"}, "subscription_confirmed")
        assert conf["subscription_type"] == "worker_updates"
        async with raw_worker(hub.ws_url, "w9") as w:
            reg = await mon.expect("worker_registered")
            assert reg["worker_id"] == "w9"
            await w.send({"type": "worker_status", "status": "draining"})
            st = await mon.expect("worker_status", where=lambda m: m.get("status") == "draining")
            assert st["worker_id"] == "w9"
