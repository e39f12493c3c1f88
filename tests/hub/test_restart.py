"""A hub process restarted with jobs in every state loses nothing (issue item 10)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from tests.support.hub_fixtures import HubProcess, RawPeer, raw_worker

ProcFactory = Callable[..., AbstractAsyncContextManager[HubProcess]]


async def _claim(w: RawPeer) -> dict[str, Any]:
    return await w.request({"type": "claim_job"}, "job_assigned")


@pytest.mark.slow
async def test_restart_keeps_jobs_in_every_state(hub_process: ProcFactory) -> None:
    async with (
        hub_process(EMPQ_RETRY_DELAYS="3600") as proc,
        httpx.AsyncClient(base_url=proc.http_url, timeout=5) as http,
    ):

        async def submit(**fields: Any) -> str:
            r = await http.post("/api/jobs", json={"type": "t", **fields})
            return str(r.json()["job_id"])

        caps = {"services": ["simulation"], "performance": {"concurrent_jobs": 8}}
        async with raw_worker(proc.ws_url, "w", caps) as w:
            ids = {
                name: await submit(priority=90 - i)
                for i, name in enumerate(
                    [
                        "assigned",
                        "accepted",
                        "in_progress",
                        "completed",
                        "failed",
                        "retrying",
                        "cancelled",
                    ]
                )
            }
            ids["queued"] = await submit(priority=1)
            tokens = {}
            for name in (
                "assigned",
                "accepted",
                "in_progress",
                "completed",
                "failed",
                "retrying",
                "cancelled",
            ):
                a = await _claim(w)
                assert a["job_id"] == ids[name]
                tokens[name] = a["claim_token"]
            for name in ("accepted", "in_progress"):
                await w.send(
                    {
                        "type": "job_accepted_by_worker",
                        "job_id": ids[name],
                        "claim_token": tokens[name],
                    }
                )
            await w.send(
                {
                    "type": "update_job_progress",
                    "job_id": ids["in_progress"],
                    "claim_token": tokens["in_progress"],
                    "progress": 50,
                }
            )
            await w.request(
                {
                    "type": "complete_job",
                    "job_id": ids["completed"],
                    "claim_token": tokens["completed"],
                    "result": {"r": 1},
                },
                "job_completed_ack",
            )
            await w.request(
                {
                    "type": "fail_job",
                    "job_id": ids["failed"],
                    "claim_token": tokens["failed"],
                    "error": "x",
                    "retry": False,
                },
                "job_failed_ack",
            )
            await w.request(
                {
                    "type": "fail_job",
                    "job_id": ids["retrying"],
                    "claim_token": tokens["retrying"],
                    "error": "y",
                    "retry": True,
                },
                "job_failed_ack",
            )
            await http.post(f"/api/jobs/{ids['cancelled']}/cancel")
            before = {n: (await http.get(f"/api/jobs/{i}")).json() for n, i in ids.items()}
            await proc.stop()
            bye = await w.expect("server_disconnect")
            assert bye["reason"]

        await proc.start()
        after = {n: (await http.get(f"/api/jobs/{i}")).json() for n, i in ids.items()}
        for name in ids:
            assert after[name]["status"] == before[name]["status"], name
        assert after["in_progress"]["progress"] == 50
        assert after["completed"]["result"] == {"r": 1}
        assert after["retrying"]["status"] == "failed"
        assert after["retrying"]["retry_at"]
        assert after["queued"]["position"] == 1

        # The worker comes back with the job it still runs and finishes it with its old
        # token; the two it no longer lists were requeued by its registration (attempt
        # counted), back at their places ahead of the queued job.
        async with raw_worker(proc.ws_url, "w", caps, current_jobs=[ids["in_progress"]]) as w:
            await w.request(
                {
                    "type": "complete_job",
                    "job_id": ids["in_progress"],
                    "claim_token": tokens["in_progress"],
                    "result": {},
                },
                "job_completed_ack",
            )
            a = await _claim(w)
            assert a["job_id"] == ids["assigned"]
            assert a["attempts"] == 1
        final = (await http.get(f"/api/jobs/{ids['in_progress']}")).json()
        assert final["status"] == "completed"
