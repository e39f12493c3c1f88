"""Placement seen from outside: dry-run match, position and ETA, warm models (CONTRACT §10)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.hub_fixtures import HubFactory, HubHandle, RawPeer, raw_worker

SIM = {"service_type": "simulation"}
JOB = {"type": "t", "requirements": SIM}


async def _complete(w: RawPeer, a: dict[str, Any], **extra: Any) -> None:
    await w.send(
        {
            "type": "complete_job",
            "job_id": a["job_id"],
            "claim_token": a["claim_token"],
            "result": {},
            **extra,
        }
    )


async def test_dry_run_answers_position_workers_and_warnings_and_stores_nothing(
    hub: HubHandle,
) -> None:
    small = {"services": ["simulation"], "hardware": {"gpu_memory_gb": 8}}
    big = {"services": ["simulation"], "hardware": {"gpu_memory_gb": 24}}
    async with (
        hub.client() as http,
        raw_worker(hub.ws_url, "small", small),
        raw_worker(hub.ws_url, "big", big),
    ):
        for p in (90, 10):
            assert (await http.post("/api/jobs", json={**JOB, "priority": p})).status_code == 201
        before = (await http.get("/api/stats")).json()
        body = {**JOB, "priority": 50, "requirements": {**SIM, "hardware": {"gpu_memory_gb": 16}}}
        r = await http.post("/api/match", json=body)
        assert r.status_code == 200, r.text
        m = r.json()
        # Behind the priority-90 job, ahead of the priority-10 one.
        assert m["position"] == 2
        assert [w["worker_id"] for w in m["matching_workers"]] == ["big"]
        [rej] = m["rejected_workers"]
        assert rej["worker_id"] == "small"
        assert any("gpu_memory_gb" in why for why in rej["reasons"])
        assert m["warnings"] == []
        assert "eta_seconds" in m
        # Nothing was stored: the queue and the job list are as before.
        after = (await http.get("/api/stats")).json()
        assert after["queue_depth"] == before["queue_depth"] == 2
        assert len((await http.get("/api/jobs")).json()["jobs"]) == 2
        # A submission no worker could run is answered with its warning.
        r = await http.post("/api/match", json={"type": "t", "requirements": {"models": ["x"]}})
        assert r.json()["matching_workers"] == []
        assert r.json()["warnings"]
        assert r.json()["eta_seconds"] is None
        assert r.json()["eta_reason"] == "no connected worker can run this job"


async def test_dry_run_refuses_a_bad_submission_by_field(hub: HubHandle) -> None:
    async with hub.client() as http:
        r = await http.post("/api/match", json={"type": "t", "priority": 101, "bogus": 1})
        assert r.status_code == 422
        text = r.text
        assert "priority" in text
        assert "bogus" in text


async def test_eta_is_null_with_a_reason_without_a_capable_worker(hub: HubHandle) -> None:
    async with hub.client() as http:
        r = await http.post("/api/jobs", json=JOB)
        assert r.json()["eta_seconds"] is None
        assert r.json()["eta_reason"] == "no connected worker can run this job"
        got = (await http.get(f"/api/jobs/{r.json()['job_id']}")).json()
        assert got["eta_seconds"] is None
        assert got["position"] == 1


async def test_eta_grows_with_the_jobs_ahead_from_measured_run_times(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        # One job run (for a measurable while) gives the worker a run time.
        await http.post("/api/jobs", json=JOB)
        a = await w.request({"type": "claim_job"}, "job_assigned")
        await asyncio.sleep(0.2)  # the job's run time, not a wait for an event
        await _complete(w, a)
        await w.expect("job_completed_ack")
        # Busy with one job, three queued behind it: each waits one more run.
        await http.post("/api/jobs", json=JOB)
        await w.request({"type": "claim_job"}, "job_assigned")
        etas = []
        for _ in range(3):
            r = (await http.post("/api/jobs", json=JOB)).json()
            assert r["eta_seconds"] is not None
            etas.append(r["eta_seconds"])
        assert 0.19 < etas[0] < etas[1] < etas[2]
        assert abs(etas[2] - 3 * etas[0]) < 0.01
        # GET agrees with the submit reply for a job still queued.
        jobs = (await http.get("/api/jobs", params={"status": "queued"})).json()["jobs"]
        last = min(jobs, key=lambda j: j["created_at"])
        got = (await http.get(f"/api/jobs/{last['id']}")).json()
        assert got["eta_seconds"] == etas[0]


async def test_job_accepted_carries_position_and_eta(hub: HubHandle) -> None:
    async with (
        raw_worker(hub.ws_url, "w"),
        RawPeer.connect(hub.ws_url) as c,
    ):
        await c.request(
            {"type": "register_client", "client_type": "job_client"}, "client_registered"
        )
        acc = await c.request(
            {"type": "submit_job", "job_type": "t", "requirements": SIM}, "job_accepted"
        )
        assert acc["position"] == 1
        assert acc["eta_seconds"] == 0


async def test_models_loaded_is_reported_and_listed(hub: HubHandle) -> None:
    caps = {"services": ["simulation"], "models": {"simulation": ["a", "b"]}}
    async with (
        hub.client() as http,
        raw_worker(hub.ws_url, "w", caps, models_loaded={"simulation": ["a"]}) as w,
    ):
        [info] = (await http.get("/api/workers")).json()["workers"]
        assert info["models_loaded"] == {"simulation": ["a"]}
        await w.request(
            {"type": "worker_heartbeat", "status": "idle", "models_loaded": {"simulation": ["b"]}},
            "worker_heartbeat_ack",
        )
        [info] = (await http.get("/api/workers")).json()["workers"]
        assert info["models_loaded"] == {"simulation": ["b"]}
        await w.send(
            {"type": "worker_status", "status": "idle", "models_loaded": {"simulation": ["a", "b"]}}
        )
        await w.request({"type": "ping"}, "pong")
        assert (await http.get("/api/workers/w")).json()["models_loaded"] == {
            "simulation": ["a", "b"]
        }
        err = await w.request(
            {
                "type": "worker_heartbeat",
                "status": "idle",
                "models_loaded": {"simulation": ["m"] * 65},
            },
            "error",
        )
        assert "models_loaded" in err["error"]


async def test_a_job_wakes_the_parked_worker_with_its_models_warm(hub: HubHandle) -> None:
    caps = {"services": ["simulation"], "models": {"simulation": ["a", "b"]}}
    job = {"type": "t", "requirements": {**SIM, "models": ["b"]}}
    async with (
        hub.client() as http,
        raw_worker(hub.ws_url, "w1", caps, models_loaded={"simulation": ["a"]}) as w1,
        raw_worker(hub.ws_url, "w2", caps, models_loaded={"simulation": ["b"]}) as w2,
        raw_worker(hub.ws_url, "w3", caps) as w3,
    ):
        for w in (w1, w2, w3):
            await w.send({"type": "claim_job", "wait_seconds": 20})
            await w.request({"type": "ping"}, "pong")
        for _ in range(3):
            r = await http.post("/api/jobs", json=job)
            a = await w2.expect("job_assigned")
            assert a["job_id"] == r.json()["job_id"]
            await _complete(w2, a)
            await w2.expect("job_completed_ack")
            await w2.send({"type": "claim_job", "wait_seconds": 20})
            await w2.request({"type": "ping"}, "pong")
        assert w1.taken("job_assigned") == []
        assert w3.taken("job_assigned") == []
        # Explain says where the job's models are warm.
        r = await http.post("/api/match", json=job)
        warm = {m["worker_id"]: m["warm"] for m in r.json()["matching_workers"]}
        assert warm == {"w1": False, "w2": True, "w3": False}
        assert r.json()["matching_workers"][0]["worker_id"] == "w2"


async def test_an_idle_worker_with_the_models_warm_is_offered_the_job(hub: HubHandle) -> None:
    caps = {"services": ["simulation"], "models": {"simulation": ["a", "b"]}}
    job = {"type": "t", "requirements": {**SIM, "models": ["a"]}}
    async with (
        hub.client() as http,
        raw_worker(hub.ws_url, "w1", caps, models_loaded={"simulation": ["b"]}) as w1,
        raw_worker(hub.ws_url, "w2", caps, models_loaded={"simulation": ["a"]}) as w2,
    ):
        r = await http.post("/api/jobs", json=job)
        offer = await w2.expect("job_available")
        assert offer["job_id"] == r.json()["job_id"]
        assert w1.taken("job_available") == []


async def test_a_job_waits_briefly_for_its_busy_warm_worker(hub_factory: HubFactory) -> None:
    caps = {"services": ["simulation"], "models": {"simulation": ["a", "b"]}}
    job = {"type": "t", "requirements": {**SIM, "models": ["a"]}}
    async with (
        hub_factory(warm_wait_seconds=30) as h,
        h.client() as http,
        raw_worker(h.ws_url, "warm", caps, models_loaded={"simulation": ["a"]}) as warm,
        raw_worker(h.ws_url, "cold", caps, models_loaded={"simulation": ["b"]}) as cold,
    ):
        await http.post("/api/jobs", json=job)
        busy = await warm.request({"type": "claim_job"}, "job_assigned")
        await cold.send({"type": "claim_job", "wait_seconds": 20})
        await cold.request({"type": "ping"}, "pong")
        # The warm worker is busy: the job is left for it, not given to the cold one.
        second = (await http.post("/api/jobs", json=job)).json()["job_id"]
        await _complete(warm, busy, claim_next={"wait_seconds": 20})
        got = await warm.expect("job_assigned")
        assert got["job_id"] == second
        assert cold.taken("job_assigned") == []


async def test_a_job_goes_to_a_cold_worker_once_the_warm_wait_ends(
    hub_factory: HubFactory,
) -> None:
    caps = {"services": ["simulation"], "models": {"simulation": ["a", "b"]}}
    job = {"type": "t", "requirements": {**SIM, "models": ["a"]}}
    async with (
        hub_factory(warm_wait_seconds=0.2) as h,
        h.client() as http,
        raw_worker(h.ws_url, "warm", caps, models_loaded={"simulation": ["a"]}) as warm,
        raw_worker(h.ws_url, "cold", caps) as cold,
    ):
        await http.post("/api/jobs", json=job)
        await warm.request({"type": "claim_job"}, "job_assigned")
        await cold.send({"type": "claim_job", "wait_seconds": 20})
        await cold.request({"type": "ping"}, "pong")
        second = (await http.post("/api/jobs", json=job)).json()["job_id"]
        assert (await cold.expect("job_assigned"))["job_id"] == second


async def test_a_cold_job_goes_where_it_evicts_no_model_only_that_worker_holds(
    hub: HubHandle,
) -> None:
    caps = {"services": ["simulation"], "models": {"simulation": ["x", "y", "z"]}}
    async with (
        hub.client() as http,
        raw_worker(hub.ws_url, "w1", caps, models_loaded={"simulation": ["x"]}) as w1,
        raw_worker(hub.ws_url, "w2", caps, models_loaded={"simulation": ["y"]}) as w2,
        raw_worker(hub.ws_url, "w3", caps, models_loaded={"simulation": ["y"]}) as w3,
    ):
        # w3 is busy; w1 alone holds x, and y is also warm on w3: w2 loses the fleet least.
        await http.post("/api/jobs", json={"type": "t", "requirements": SIM})
        await w3.request({"type": "claim_job"}, "job_assigned")
        for w in (w1, w2):
            await w.send({"type": "claim_job", "wait_seconds": 20})
            await w.request({"type": "ping"}, "pong")
        r = await http.post(
            "/api/jobs", json={"type": "t", "requirements": {**SIM, "models": ["z"]}}
        )
        assert (await w2.expect("job_assigned"))["job_id"] == r.json()["job_id"]
        assert w1.taken("job_assigned") == []


async def test_eta_counts_workers_connected_to_another_hub(hub_factory: HubFactory) -> None:
    async with (
        hub_factory() as one,
        hub_factory() as two,
        two.client() as http,
        raw_worker(one.ws_url, "far") as far,
    ):
        # Hub two learns of the worker from the shared record (as GET /api/workers reads it).
        assert [w["worker_id"] for w in (await http.get("/api/workers")).json()["workers"]] == [
            "far"
        ]
        r = (await http.post("/api/jobs", json=JOB)).json()
        assert r["eta_seconds"] == 0
        await far.request({"type": "claim_job"}, "job_assigned")


async def test_the_dry_run_needs_an_operator_key(hub_factory: HubFactory) -> None:
    async with hub_factory(api_keys="op-key,a-key:customer=A") as h:
        async with h.client(headers={"Authorization": "Bearer a-key"}) as customer:
            r = await customer.post("/api/match", json=JOB)
            assert r.status_code == 403
            assert r.json()["error"]["code"] == "FORBIDDEN"
        async with h.client(headers={"Authorization": "Bearer op-key"}) as operator:
            assert (await operator.post("/api/match", json=JOB)).status_code == 200
