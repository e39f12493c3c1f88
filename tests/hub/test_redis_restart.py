"""A running hub carries on when Redis restarts from its append-only file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from empq.redis_server import RedisServer
from tests.support.hub_fixtures import RawPeer, raw_worker, start_hub


async def _run_one(http: Any, worker: RawPeer, monitor: RawPeer) -> str:
    """Submit a job; the idle worker is offered it, claims and completes it."""
    job_id: str = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
    offer = await worker.expect("job_available", within=10)
    assert offer["job_id"] == job_id
    a = await worker.request({"type": "claim_job"}, "job_assigned")
    await worker.request(
        {"type": "complete_job", "job_id": job_id, "claim_token": a["claim_token"], "result": {}},
        "job_completed_ack",
    )
    done = await monitor.expect("job_completed", within=10, where=lambda m: m["job_id"] == job_id)
    assert done["worker_id"] == "w"
    return job_id


async def test_dispatch_and_events_resume_after_redis_restarts(tmp_path: Path) -> None:
    # The scripts' connection, the event reader's and the pool's all break at once;
    # each is replaced on its next use, and the event reader resumes from the last
    # event it routed (the stream came back from the append-only file).
    server = RedisServer(tmp_path / "redis", persistent=True).start()
    try:
        async with (
            start_hub(server.url, tmp_path / "hub") as hub,
            hub.client() as http,
            RawPeer.connect(hub.ws_url) as monitor,
            raw_worker(hub.ws_url, "w") as worker,
        ):
            await monitor.request(
                {"type": "subscribe_job_notifications"}, "job_notifications_subscribed"
            )
            before = await _run_one(http, worker, monitor)
            server.stop()  # SIGTERM: Redis writes out its append-only file
            server.start()
            after = await _run_one(http, worker, monitor)
            assert (await http.get(f"/api/jobs/{before}")).json()["status"] == "completed"
            assert (await http.get(f"/api/jobs/{after}")).json()["status"] == "completed"
    finally:
        server.stop()
