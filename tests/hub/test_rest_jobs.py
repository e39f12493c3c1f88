"""REST job routes as CONTRACT §3 describes them."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.hub_fixtures import HubHandle, raw_worker

SIM = {"service_type": "simulation"}


async def submit(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"type": "t", "requirements": SIM, **fields}
    r = await http.post("/api/jobs", json=body)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_submit_replies_201_with_id_status_position_and_iso_time(hub: HubHandle) -> None:
    async with hub.client() as http:
        first = await submit(http)
        second = await submit(http, priority=90)
        third = await submit(http)
    assert first["status"] == "queued"
    assert first["created_at"].endswith("+00:00") or first["created_at"].endswith("Z")
    assert second["position"] == 1  # higher priority goes first
    assert third["position"] == 3


async def test_bad_submission_names_every_bad_field_and_stores_nothing(hub: HubHandle) -> None:
    async with hub.client() as http:
        r = await http.post(
            "/api/jobs",
            json={
                "type": "t",
                "priority": 101,
                "max_retries": -1,
                "colour": "red",
                "requirements": {"customer_isolation": "total"},
            },
        )
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["code"] == "VALIDATION_ERROR"
        fields = {d["field"] for d in err["details"]}
        assert {"priority", "max_retries", "colour", "requirements.customer_isolation"} <= fields
        assert "colour" in err["message"]
        listed = (await http.get("/api/jobs")).json()
        assert listed["jobs"] == []


async def test_missing_type_and_non_json_body_are_422(hub: HubHandle) -> None:
    async with hub.client() as http:
        r = await http.post("/api/jobs", json={})
        assert r.status_code == 422
        assert r.json()["error"]["details"][0]["field"] == "type"
        r = await http.post(
            "/api/jobs", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_get_returns_every_field_and_404_has_error_shape(hub: HubHandle) -> None:
    async with hub.client() as http:
        s = await submit(http, customer_id="acme", payload={"x": 1}, workflow_id="wf")
        job = (await http.get(f"/api/jobs/{s['job_id']}")).json()
        for key in (
            "id",
            "status",
            "progress",
            "message",
            "worker_id",
            "attempts",
            "created_at",
            "assigned_at",
            "started_at",
            "completed_at",
            "result",
            "error",
            "position",
            "payload",
            "requirements",
            "customer_id",
            "priority",
            "max_retries",
        ):
            assert key in job
        assert job["id"] == s["job_id"]
        assert job["payload"] == {"x": 1}
        assert job["position"] == 1
        r = await http.get("/api/jobs/nope")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "JOB_NOT_FOUND"
        assert "nope" in r.json()["error"]["message"]


async def test_batch_is_all_or_nothing(hub: HubHandle) -> None:
    async with hub.client() as http:
        r = await http.post("/api/jobs/batch", json={"jobs": [{"type": "a"}, {"type": "b"}]})
        assert r.status_code == 201
        jobs = r.json()["jobs"]
        assert [j["position"] for j in jobs] == [1, 2]
        assert all(j["status"] == "queued" for j in jobs)
        r = await http.post(
            "/api/jobs/batch", json={"jobs": [{"type": "c"}, {"type": "d", "priority": 500}]}
        )
        assert r.status_code == 422
        assert r.json()["error"]["details"][0]["field"] == "jobs.1.priority"
        assert len((await http.get("/api/jobs")).json()["jobs"]) == 2


async def test_list_filters_and_pages_with_cursor(hub: HubHandle) -> None:
    async with hub.client() as http:
        for i in range(5):
            await submit(http, customer_id="a" if i % 2 else "b", type="x" if i < 3 else "y")
        page = (await http.get("/api/jobs", params={"limit": 2})).json()
        assert len(page["jobs"]) == 2
        assert page["next_cursor"]
        rest = (
            await http.get("/api/jobs", params={"limit": 10, "cursor": page["next_cursor"]})
        ).json()
        ids = [j["id"] for j in page["jobs"] + rest["jobs"]]
        assert len(set(ids)) == 5
        assert all(
            j["customer_id"] == "a"
            for j in (await http.get("/api/jobs?customer_id=a")).json()["jobs"]
        )
        assert len((await http.get("/api/jobs?type=y")).json()["jobs"]) == 2
        assert len((await http.get("/api/jobs?status=queued")).json()["jobs"]) == 5
        assert (await http.get("/api/jobs?status=bogus")).status_code == 422
        assert (await http.get("/api/jobs?limit=0")).status_code == 422


async def test_cancel_then_409_then_retry(hub: HubHandle) -> None:
    async with hub.client() as http:
        s = await submit(http)
        r = await http.post(f"/api/jobs/{s['job_id']}/cancel")
        assert r.status_code == 200
        assert r.json()["status"] == "cancelled"
        r = await http.post(f"/api/jobs/{s['job_id']}/cancel")
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "INVALID_TRANSITION"
        r = await http.post(f"/api/jobs/{s['job_id']}/retry")
        assert r.status_code == 200
        assert r.json()["status"] == "queued"
        r = await http.post(f"/api/jobs/{s['job_id']}/retry")
        assert r.status_code == 409
        r = await http.delete(f"/api/jobs/{s['job_id']}")
        assert r.status_code == 200
        assert r.json()["status"] == "cancelled"
        assert (await http.post("/api/jobs/nope/cancel")).status_code == 404


async def test_idempotent_resubmit_answers_200_with_the_first_job(hub: HubHandle) -> None:
    async with hub.client() as http:
        first = await submit(http, idempotency_key="k1")
        r = await http.post("/api/jobs", json={"type": "t", "idempotency_key": "k1"})
        assert r.status_code == 200
        assert r.json()["job_id"] == first["job_id"]
        assert len((await http.get("/api/jobs")).json()["jobs"]) == 1


async def test_unrunnable_submission_is_accepted_with_warnings(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w1"):
        ok = await submit(http)
        assert "warnings" not in ok
        r = await http.post(
            "/api/jobs", json={"type": "t", "requirements": {"service_type": "comfyui"}}
        )
        assert r.status_code == 201
        assert "comfyui" in r.json()["warnings"][0]


async def test_explain_lists_matching_and_rejected_workers_with_reasons(hub: HubHandle) -> None:
    async with (
        hub.client() as http,
        raw_worker(hub.ws_url, "gpu", {"services": ["comfyui"], "hardware": {"gpu_memory_gb": 24}}),
        raw_worker(
            hub.ws_url, "small", {"services": ["comfyui"], "hardware": {"gpu_memory_gb": 8}}
        ),
        raw_worker(hub.ws_url, "sim"),
    ):
        s = await submit(
            http, requirements={"service_type": "comfyui", "hardware": {"gpu_memory_gb": 16}}
        )
        body = (await http.get(f"/api/jobs/{s['job_id']}/explain")).json()
        assert body["job_id"] == s["job_id"]
        assert body["status"] == "queued"
        assert body["position"] == 1
        assert [m["worker_id"] for m in body["matching_workers"]] == ["gpu"]
        rejected = {r["worker_id"]: r["reasons"] for r in body["rejected_workers"]}
        assert "gpu_memory_gb" in rejected["small"][0]
        assert "comfyui" in rejected["sim"][0]
        assert body["summary"]
        assert (await http.get("/api/jobs/nope/explain")).status_code == 404


async def test_unknown_route_and_method_have_error_shape(hub: HubHandle) -> None:
    async with hub.client() as http:
        r = await http.get("/api/nothing")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "NOT_FOUND"
        r = await http.put("/api/jobs")
        assert r.status_code == 405
        assert r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_a_payload_arrives_as_it_was_sent(hub: HubHandle) -> None:
    # Non-ASCII text, floats, nulls, nesting and big integers, through REST, Redis and
    # the worker's job_assigned, and back through GET.
    payload = {
        "prompt": 'café ☕ 猫 — "quoted" \\ back\nslash',
        "cfg": 7.5,
        "seed": 2**53 + 1,
        "steps": [1, 2.25, None, {"deep": [True, False]}],
        "empty": {},
    }
    caps = {"services": ["simulation"], "models": {"simulation": ["ünïcode"]}}
    async with hub.client() as http, raw_worker(hub.ws_url, "w", caps) as w:
        s = await submit(http, payload=payload, requirements={**SIM, "models": ["ünïcode"]})
        a = await w.request({"type": "claim_job"}, "job_assigned")
        assert a["job_id"] == s["job_id"]
        assert a["payload"] == payload
        assert a["requirements"]["models"] == ["ünïcode"]
        job = (await http.get(f"/api/jobs/{s['job_id']}")).json()
    assert job["payload"] == payload
