"""Artifacts on disk under the claim (CONTRACT §3) and Prometheus metrics."""

from __future__ import annotations

from tests.support.hub_fixtures import HubFactory, HubHandle, raw_worker


async def test_worker_stores_artifact_under_its_claim_and_anyone_fetches_it(
    hub: HubHandle,
) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        a = await w.request({"type": "claim_job"}, "job_assigned")
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
        url = f"/api/jobs/{job_id}/artifacts/out.png"
        r = await http.put(
            url, content=png, headers={"X-EMPQ-Claim-Token": "bad.w", "content-type": "image/png"}
        )
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "STALE_CLAIM"
        r = await http.put(url, content=png)
        assert r.status_code == 401
        r = await http.put(
            url,
            content=png,
            headers={"X-EMPQ-Claim-Token": a["claim_token"], "content-type": "image/png"},
        )
        assert r.status_code == 201
        assert r.json()["url"] == hub.http_url + url
        got = await http.get(url)
        assert got.status_code == 200
        assert got.content == png
        assert got.headers["content-type"] == "image/png"
        assert (hub.settings.artifact_dir / job_id / "out.png").read_bytes() == png
        assert (await http.get(f"/api/jobs/{job_id}/artifacts/other.png")).status_code == 404
        r = await http.put(
            f"/api/jobs/{job_id}/artifacts/..secret",
            content=b"x",
            headers={"X-EMPQ-Claim-Token": a["claim_token"]},
        )
        assert r.status_code == 422
        await w.request(
            {
                "type": "complete_job",
                "job_id": job_id,
                "claim_token": a["claim_token"],
                "result": {"output_files": [hub.http_url + url]},
            },
            "job_completed_ack",
        )
        r = await http.put(url, content=b"late", headers={"X-EMPQ-Claim-Token": a["claim_token"]})
        assert r.status_code == 409


async def test_worker_token_may_upload_when_api_keys_are_set(hub_factory: HubFactory) -> None:
    async with (
        hub_factory(api_keys="k", worker_tokens="wt") as hub,
        hub.client(headers={"Authorization": "Bearer k"}) as http,
        raw_worker(hub.ws_url, "w", auth_token="wt") as w,
    ):
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        a = await w.request({"type": "claim_job"}, "job_assigned")
        r = await http.put(
            f"/api/jobs/{job_id}/artifacts/a.txt",
            content=b"hi",
            headers={"X-EMPQ-Claim-Token": a["claim_token"], "Authorization": "Bearer wt"},
        )
        assert r.status_code == 201
        assert (await http.get(f"/api/jobs/{job_id}/artifacts/a.txt")).text == "hi"


async def test_metrics_report_jobs_workers_and_latencies(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        await http.post("/api/jobs", json={"type": "t"})
        await http.post("/api/jobs", json={"type": "t"})
        await w.expect("job_available")
        await w.request({"type": "claim_job"}, "job_assigned")
        text = (await http.get("/metrics")).text
        assert 'empq_jobs{status="queued"} 1.0' in text
        assert 'empq_jobs{status="assigned"} 1.0' in text
        assert "empq_queue_depth 1.0" in text
        assert 'empq_workers{status="busy"} 1.0' in text
        assert "empq_claim_latency_seconds_count 1.0" in text
        assert "empq_dispatch_latency_seconds_count 1.0" in text
        assert "empq_webhook_failures_total" in text


async def test_stats_and_workers_routes(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w1") as w:
        await http.post("/api/jobs", json={"type": "t", "priority": 90})
        stats = (await http.get("/api/stats")).json()
        assert stats["jobs_by_status"]["queued"] == 1
        assert stats["queued_by_priority_band"]["75-100"] == 1
        assert stats["workers_by_status"]["idle"] == 1
        for key in ("throughput_per_second", "avg_wait_seconds", "avg_run_seconds"):
            assert key in stats
        await w.request({"type": "claim_job"}, "job_assigned")
        workers = (await http.get("/api/workers")).json()["workers"]
        assert workers[0]["worker_id"] == "w1"
        assert workers[0]["status"] == "busy"
        assert len(workers[0]["current_jobs"]) == 1
        assert workers[0]["capabilities"]["services"] == ["simulation"]
        r = await http.get("/api/workers/nope")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "WORKER_NOT_FOUND"


async def test_dashboard_pages_are_served(hub: HubHandle) -> None:
    async with hub.client() as http:
        for path in ("/", "/dashboard"):
            r = await http.get(path)
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/html")
        assert (await http.get("/openapi.json")).json()["info"]["title"] == "empq hub"
        assert (await http.get("/docs")).status_code == 200
