"""Worker identity (docs/security.md): a live worker's id cannot be taken over, tokens
bound to ids, and a registration that settles every job its id still holds. Issue 25
hole 2; issue 20 item 3."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from websockets.asyncio.client import connect

from empq.worker.runtime import Worker
from tests.support.hub_fixtures import HubFactory, HubHandle, RawPeer, raw_worker
from tests.worker.conftest import wait_for_job, worker_settings

CAPS = {"services": ["simulation"], "performance": {"concurrent_jobs": 3}}
JOB = {"type": "t", "requirements": {"service_type": "simulation"}}


@asynccontextmanager
async def _worker_updates(hub: HubHandle) -> AsyncIterator[RawPeer]:
    """A monitor subscribed to worker updates (`worker_status` among them)."""
    async with RawPeer.connect(hub.ws_url) as monitor:
        await monitor.request(
            {"type": "subscribe_worker_updates", "enabled": True}, "subscription_confirmed"
        )
        yield monitor


async def _gone(monitor: RawPeer, http: httpx.AsyncClient, worker_id: str) -> None:
    """Until the hub has seen the worker's socket close (its `worker_status` saying
    `connected: false`, sent once the registry has it)."""
    await monitor.expect(
        "worker_status",
        where=lambda m: m.get("worker_id") == worker_id and m.get("connected") is False,
        within=5,
    )
    assert (await http.get(f"/api/workers/{worker_id}")).json()["connected"] is False


class _Told(logging.Handler):
    """Sets `seen` once a record's message holds `text`."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


async def test_live_worker_id_cannot_be_taken_over(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "victim", CAPS) as victim:
        job_id = (await http.post("/api/jobs", json=JOB)).json()["job_id"]
        assigned = await victim.request({"type": "claim_job"}, "job_assigned")
        token = assigned["claim_token"]
        async with RawPeer.connect(hub.ws_url) as impostor:
            err = await impostor.request(
                {"type": "register_worker", "worker_id": "victim", "capabilities": CAPS},
                "error",
            )
            assert err["error_code"] == "WORKER_ID_IN_USE"
            assert "victim" in err["error"]
            # Unregistered, its disconnect is refused and requeues nothing.
            err = await impostor.request({"type": "disconnect", "reason": "x"}, "error")
            assert err["error_code"] == "NOT_REGISTERED"
        # The real worker still holds its job and reports on it.
        await victim.send(
            {"type": "update_job_progress", "job_id": job_id, "claim_token": token, "progress": 50}
        )
        await victim.request(
            {"type": "complete_job", "job_id": job_id, "claim_token": token, "result": {}},
            "job_completed_ack",
        )
        done = (await http.get(f"/api/jobs/{job_id}")).json()
        assert done["status"] == "completed"
        assert done["worker_id"] == "victim"
        assert not victim.taken("error")


async def test_cancel_goes_to_the_real_worker_not_a_second_socket(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w1", CAPS) as real:
        job_id = (await http.post("/api/jobs", json=JOB)).json()["job_id"]
        await real.request({"type": "claim_job"}, "job_assigned")
        async with RawPeer.connect(hub.ws_url) as impostor:
            await impostor.request({"type": "register_worker", "worker_id": "w1"}, "error")
            assert (await http.post(f"/api/jobs/{job_id}/cancel")).status_code == 200
            cancel = await real.expect("cancel_job")
            assert cancel["job_id"] == job_id
            assert not impostor.taken("cancel_job")


async def test_same_id_registers_again_once_the_old_connection_is_gone(hub: HubHandle) -> None:
    async with hub.client() as http, _worker_updates(hub) as monitor:
        async with raw_worker(hub.ws_url, "w2", CAPS) as first:
            job_id = (await http.post("/api/jobs", json=JOB)).json()["job_id"]
            token = (await first.request({"type": "claim_job"}, "job_assigned"))["claim_token"]
        await _gone(monitor, http, "w2")
        async with raw_worker(hub.ws_url, "w2", CAPS, current_jobs=[job_id]) as again:
            await again.request(
                {"type": "complete_job", "job_id": job_id, "claim_token": token, "result": {}},
                "job_completed_ack",
            )
        assert (await http.get(f"/api/jobs/{job_id}")).json()["status"] == "completed"


async def test_a_socket_registers_one_worker_only(hub: HubHandle) -> None:
    async with raw_worker(hub.ws_url, "a", CAPS) as peer:
        err = await peer.request({"type": "register_worker", "worker_id": "b"}, "error")
        assert err["error_code"] == "ALREADY_REGISTERED"
        again = await peer.request(
            {"type": "register_worker", "worker_id": "a"}, "worker_registered"
        )
        assert again["worker_id"] == "a"


async def test_tokens_bound_to_ids_and_prefixes(hub_factory: HubFactory) -> None:
    tokens = "gpu-secret:worker=gpu-*,one-secret:worker=exact-1,any-secret"
    async with hub_factory(worker_tokens=tokens) as hub:
        allowed = [("gpu-secret", "gpu-7"), ("one-secret", "exact-1"), ("any-secret", "cpu-1")]
        for secret, wid in allowed:
            async with RawPeer.connect(hub.ws_url) as peer:
                await peer.request(
                    {"type": "register_worker", "worker_id": wid, "auth_token": secret},
                    "worker_registered",
                )
        refused = [("gpu-secret", "cpu-1"), ("one-secret", "exact-10"), ("gpu-secret", "gpu")]
        for secret, wid in refused:
            async with connect(hub.ws_url) as ws:
                await ws.recv()  # connection_established
                await ws.send(
                    f'{{"type": "register_worker", "worker_id": "{wid}", "auth_token": "{secret}"}}'
                )
                import json

                err = json.loads(await ws.recv())
                assert err["error_code"] == "AUTH_FAILED", (secret, wid)
                assert wid in err["error"]
                assert secret not in err["error"]
                await ws.wait_closed()


async def test_registration_settles_every_job_the_id_holds(hub: HubHandle) -> None:
    """Issue 20 item 3: a worker SIGKILLed and restarted under the same id lists one of
    its three jobs as current: that one stays held under the same claim token, the other
    two are requeued at once with the attempt counted (no heartbeat timeout to wait)."""
    async with hub.client() as http, _worker_updates(hub) as updates:
        ids = [(await http.post("/api/jobs", json=JOB)).json()["job_id"] for _ in range(3)]
        last = (await http.post("/api/jobs", json={**JOB, "max_retries": 0})).json()["job_id"]
        caps = {**CAPS, "performance": {"concurrent_jobs": 4}}
        tokens: dict[str, str] = {}
        async with raw_worker(hub.ws_url, "gpu-0", caps) as first:
            await first.send({"type": "claim_job", "max_jobs": 4})
            for _ in range(4):
                a = await first.expect("job_assigned")
                tokens[a["job_id"]] = a["claim_token"]
            await first.send(
                {"type": "job_accepted_by_worker", "job_id": ids[0], "claim_token": tokens[ids[0]]}
            )
            await first.send(
                {
                    "type": "update_job_progress",
                    "job_id": ids[0],
                    "claim_token": tokens[ids[0]],
                    "progress": 40,
                }
            )
            await first.request({"type": "ping", "worker_id": "sync"}, "pong")
        await _gone(updates, http, "gpu-0")
        async with RawPeer.connect(hub.ws_url) as monitor:
            await monitor.request(
                {"type": "subscribe_job_notifications"}, "job_notifications_subscribed"
            )
            async with raw_worker(hub.ws_url, "gpu-0", caps, current_jobs=[ids[0]]) as again:
                kept = (await http.get(f"/api/jobs/{ids[0]}")).json()
                assert kept["status"] == "in_progress"
                assert kept["worker_id"] == "gpu-0"
                assert kept["attempts"] == 0
                for jid in ids[1:]:
                    job = (await http.get(f"/api/jobs/{jid}")).json()
                    assert job["status"] == "queued", job
                    assert job["attempts"] == 1
                    assert job["worker_id"] is None
                final = (await http.get(f"/api/jobs/{last}")).json()
                assert final["status"] == "failed"
                assert final["attempts"] == 1
                # Subscribers heard of each change.
                for jid in ids[1:]:
                    await monitor.expect(
                        "job_update",
                        where=lambda m, j=jid: m.get("job_id") == j and m.get("status") == "queued",
                    )
                await monitor.expect("job_failed", where=lambda m: m.get("job_id") == last)
                # The kept job is still this worker's, under the same token.
                await again.request(
                    {
                        "type": "complete_job",
                        "job_id": ids[0],
                        "claim_token": tokens[ids[0]],
                        "result": {},
                    },
                    "job_completed_ack",
                )
                # A requeued job's old token is stale.
                err = await again.request(
                    {
                        "type": "complete_job",
                        "job_id": ids[1],
                        "claim_token": tokens[ids[1]],
                        "result": {},
                    },
                    "error",
                )
                assert err["job_id"] == ids[1]
        workers = (await http.get("/api/workers/gpu-0")).json()
        assert workers["worker_id"] == "gpu-0"


async def test_empq_worker_refused_for_a_live_id_registers_once_it_is_free(
    hub: HubHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """The reconnect path: a real worker whose id a live socket holds (its own old socket
    the hub has not seen close) is told why, retries, and registers once the id is free."""
    caplog.set_level(logging.INFO, logger="empq.worker")
    told = _Told("held by another live connection")
    logging.getLogger("empq.worker").addHandler(told)
    async with RawPeer.connect(hub.ws_url) as old:
        await old.request(
            {"type": "register_worker", "worker_id": "dup", "capabilities": CAPS},
            "worker_registered",
        )
        settings = worker_settings(hub.ws_url, worker_id="dup")
        worker = Worker(settings, capabilities=None, stop=asyncio.Event())
        task = asyncio.create_task(worker.run())
        try:
            assert await asyncio.to_thread(told.seen.wait, 10), "the worker was never told why"
        finally:
            logging.getLogger("empq.worker").removeHandler(told)
        assert not worker.registered.is_set()
    try:
        await asyncio.wait_for(worker.registered.wait(), 15)
        async with hub.client() as http:
            job_id = (await http.post("/api/jobs", json=JOB)).json()["job_id"]
            assert (await wait_for_job(http, job_id, within=10))["status"] == "completed"
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 15)
