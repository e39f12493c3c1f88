"""Usage accounting from outside: jobs by final status, GPU-, wait and run seconds."""

from __future__ import annotations

from typing import Any

import httpx

from empq.hub.usage_metrics import GpuSeconds
from tests.support.hub_fixtures import HubFactory, HubHandle, RawPeer, raw_worker

KEYS = "op-key,a-key:customer=A,b-key:customer=B"
SIM = {"service_type": "simulation"}


def _client(hub: HubHandle, key: str) -> httpx.AsyncClient:
    return hub.client(headers={"Authorization": f"Bearer {key}"})


async def _run_one(worker: RawPeer, outcome: dict[str, Any]) -> str:
    """Claim the next job and end it as `outcome` says (complete_job or fail_job)."""
    job = await worker.request({"type": "claim_job"}, "job_assigned")
    ack = "job_completed_ack" if outcome["type"] == "complete_job" else "job_failed_ack"
    await worker.request(
        {"job_id": job["job_id"], "claim_token": job["claim_token"], **outcome}, ack
    )
    return str(job["job_id"])


async def test_usage_counts_each_customers_jobs_and_seconds(hub_factory: HubFactory) -> None:
    async with (
        hub_factory(api_keys=KEYS, worker_tokens="wt") as hub,
        _client(hub, "op-key") as op,
        _client(hub, "a-key") as a,
        _client(hub, "b-key") as b,
        raw_worker(hub.ws_url, "gpu-1", auth_token="wt") as worker,
    ):
        assert (
            await a.post("/api/jobs", json={"type": "t", "requirements": SIM})
        ).status_code == 201
        await _run_one(worker, {"type": "complete_job", "result": {}, "processing_time": 2.5})
        await a.post("/api/jobs", json={"type": "t", "requirements": SIM})
        await _run_one(worker, {"type": "complete_job", "result": {}, "processing_time": 1.5})
        await b.post("/api/jobs", json={"type": "t", "requirements": SIM, "max_retries": 0})
        await _run_one(worker, {"type": "fail_job", "error": "boom", "retry": False})
        queued = (
            await b.post("/api/jobs", json={"type": "t", "requirements": {"service_type": "x"}})
        ).json()
        await b.post(f"/api/jobs/{queued['job_id']}/cancel")

        everyone = (await op.get("/api/usage")).json()["customers"]
        by_customer = {c["customer_id"]: c for c in everyone}
        assert set(by_customer) == {"A", "B"}
        assert by_customer["A"]["jobs"] == {"completed": 2}
        assert by_customer["A"]["run_seconds"] == 4.0
        assert by_customer["A"]["gpu_seconds"] == 4.0  # the worker does not say: 1 GPU
        assert by_customer["A"]["wait_seconds"] >= 0
        assert by_customer["B"]["jobs"] == {"cancelled": 1, "failed": 1}

        # A customer key sees only its own usage; another customer's is not found.
        mine = (await a.get("/api/usage")).json()["customers"]
        assert [c["customer_id"] for c in mine] == ["A"]
        assert (await a.get("/api/usage", params={"customer_id": "B"})).status_code == 404
        only_b = (await op.get("/api/usage", params={"customer_id": "B"})).json()["customers"]
        assert [c["customer_id"] for c in only_b] == ["B"]

        # A range before any of it holds nothing.
        old = (
            await op.get(
                "/api/usage", params={"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"}
            )
        ).json()
        assert old["customers"] == []
        bad = await op.get(
            "/api/usage", params={"from": "2020-01-02T00:00:00Z", "to": "2020-01-01T00:00:00Z"}
        )
        assert bad.status_code == 422

        metrics = (await op.get("/metrics")).text
        assert 'empq_gpu_seconds_total{customer="A"} 4.0' in metrics


def test_gpu_seconds_labels_are_capped() -> None:
    gauge = GpuSeconds(cap=2)
    gauge.totals = {"A": 10.0, "B": 5.0, "C": 1.0, "D": 2.0, None: 0.5}
    assert gauge.labelled() == {"A": 10.0, "B": 5.0, "_other": 3.5}
    (family,) = gauge.collect()
    assert len(family.samples) == 3
