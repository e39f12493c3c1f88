"""Queue control (CONTRACT §10): pause / resume a service, drain a worker, from outside.

Real hubs on one Redis, raw workers speaking the protocol, the REST API and the CLI.
"""

from __future__ import annotations

import asyncio
from typing import Any

from typer.testing import CliRunner

from empq.cli.main import app
from tests.support.hub_fixtures import HubFactory, HubHandle, RawPeer, raw_worker

BOTH = {"services": ["paint", "speak"]}


async def _submit(http: Any, service: str) -> str:
    r = await http.post("/api/jobs", json={"type": "t", "requirements": {"service_type": service}})
    assert r.status_code == 201, r.text
    job_id: str = r.json()["job_id"]
    return job_id


async def _claim(w: RawPeer, **fields: Any) -> dict[str, Any]:
    """The answer to one claim: `job_assigned` or `no_job_available`."""
    await w.send({"type": "claim_job", **fields})
    while True:
        m = await w.recv(within=10)
        if m["type"] in ("job_assigned", "no_job_available"):
            return m


async def test_a_paused_service_stays_queued_while_others_are_claimed(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w", BOTH) as w:
        r = await http.post("/api/services/paint/pause")
        assert r.status_code == 200
        assert r.json() == {"service_type": "paint", "paused": True}
        painting = await _submit(http, "paint")
        speaking = await _submit(http, "speak")
        got = await _claim(w)
        assert got["type"] == "job_assigned"
        assert got["job_id"] == speaking
        assert (await _claim(w))["type"] == "no_job_available"
        assert (await http.get(f"/api/jobs/{painting}")).json()["status"] == "queued"
        listed = (await http.get("/api/services")).json()["services"]
        assert {"service_type": "paint", "paused": True, "queued": 1} in listed
        why = (await http.get(f"/api/jobs/{painting}/explain")).json()
        assert "service paint is paused" in why["summary"]


async def test_resume_wakes_a_parked_claim(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w", BOTH) as w:
        await http.post("/api/services/paint/pause")
        painting = await _submit(http, "paint")
        await w.send({"type": "claim_job", "wait_seconds": 20})
        # The hub answers a worker's messages in order: once the heartbeat is answered,
        # the claim has parked, with nothing it may take.
        await w.request({"type": "worker_heartbeat", "status": "idle"}, "worker_heartbeat_ack")
        assert not w.taken("job_assigned")
        assert (await http.get(f"/api/jobs/{painting}")).json()["status"] == "queued"
        r = await http.post("/api/services/paint/resume")
        assert r.json() == {"service_type": "paint", "paused": False}
        got = await w.expect("job_assigned", within=15)
        assert got["job_id"] == painting
        why = (await http.get(f"/api/jobs/{painting}/explain")).json()
        assert "paused" not in why["summary"]


async def test_a_pause_on_one_hub_holds_on_the_other(hub_factory: HubFactory) -> None:
    async with (
        hub_factory() as one,
        hub_factory() as two,
        raw_worker(two.ws_url, "w", BOTH) as w,
        one.client() as http_one,
        two.client() as http_two,
    ):
        await http_one.post("/api/services/paint/pause")
        listed = (await http_two.get("/api/services")).json()["services"]
        assert listed == [{"service_type": "paint", "paused": True, "queued": 0}]
        painting = await _submit(http_two, "paint")
        assert (await _claim(w))["type"] == "no_job_available"
        await w.send({"type": "claim_job", "wait_seconds": 20})
        await w.request({"type": "worker_heartbeat", "status": "idle"}, "worker_heartbeat_ack")
        assert not w.taken("job_assigned")
        await http_one.post("/api/services/paint/resume")
        got = await w.expect("job_assigned", within=15)
        assert got["job_id"] == painting


async def test_drain_tells_the_worker_and_its_claims_get_nothing(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w", BOTH) as w:
        await _submit(http, "paint")
        r = await http.post("/api/workers/w/drain")
        assert r.status_code == 200
        assert r.json()["worker_id"] == "w"
        assert r.json()["status"] == "draining"
        order = await w.expect("drain")
        assert order["worker_id"] == "w"
        assert (await _claim(w))["type"] == "no_job_available"
        # A heartbeat that says idle does not undo the drain.
        await w.request({"type": "worker_heartbeat", "status": "idle"}, "worker_heartbeat_ack")
        assert (await http.get("/api/workers/w")).json()["status"] == "draining"
        assert (await http.post("/api/workers/nobody/drain")).status_code == 404


async def test_drain_through_another_hub_reaches_the_worker(hub_factory: HubFactory) -> None:
    async with (
        hub_factory() as one,
        hub_factory() as two,
        raw_worker(one.ws_url, "w", BOTH) as w,
        two.client() as http_two,
        one.client() as http_one,
    ):
        await _submit(http_one, "paint")
        r = await http_two.post("/api/workers/w/drain")
        assert r.status_code == 200
        assert r.json()["status"] == "draining"
        await w.expect("drain", within=10)
        assert (await _claim(w))["type"] == "no_job_available"


async def test_queue_control_is_for_operators(hub_factory: HubFactory) -> None:
    async with hub_factory(api_keys="op,cust:customer=ACME") as h, h.client() as http:
        customer = {"Authorization": "Bearer cust"}
        for path in (
            "/api/services/paint/pause",
            "/api/services/paint/resume",
            "/api/workers/w/drain",
        ):
            assert (await http.post(path, headers=customer)).status_code == 403
        assert (await http.get("/api/services", headers=customer)).status_code == 403
        ok = await http.post("/api/services/paint/pause", headers={"Authorization": "Bearer op"})
        assert ok.status_code == 200


async def test_cli_pause_resume_drain(hub: HubHandle) -> None:
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, [*args, "--hub", hub.http_url])

    async with raw_worker(hub.ws_url, "w", BOTH) as w:
        paused = await asyncio.to_thread(run, "pause", "paint")
        assert paused.exit_code == 0, paused.output
        assert "paint" in paused.output
        assert "paused" in paused.output
        resumed = await asyncio.to_thread(run, "resume", "paint", "--json")
        assert resumed.exit_code == 0, resumed.output
        assert '"paused": false' in resumed.output
        drained = await asyncio.to_thread(run, "drain", "w")
        assert drained.exit_code == 0, drained.output
        assert "draining" in drained.output
        await w.expect("drain")
        missing = await asyncio.to_thread(run, "drain", "nobody")
        assert missing.exit_code != 0
