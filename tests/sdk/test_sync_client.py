"""The blocking `Client` does what `AsyncClient` does, from plain synchronous code."""

from __future__ import annotations

import asyncio
import threading

import pytest

from empq.errors import EmpqError, JobNotFound
from empq.sdk import Client
from empq.status import JobStatus
from tests.support.hub_fixtures import HubHandle


async def test_sync_client_submits_watches_cancels_and_waits(hub: HubHandle) -> None:
    # The hub runs on this test's event loop, so the blocking calls go to a thread.
    def script() -> dict[str, object]:
        with Client(hub.http_url) as client:
            job = client.submit(type="render", requirements={"service_type": "simulation"})
            snapshots = client.watch(job.id)
            first = next(snapshots)
            snapshots.close()  # leaving a watch early closes its subscription
            cancelled = client.cancel(job.id)
            final = client.wait(job.id, timeout=5)
            listed = [j.id for j in client.jobs()]
            with pytest.raises(JobNotFound):
                client.get("missing")
            return {"job": job, "first": first, "cancelled": cancelled, "final": final,
                    "listed": listed}  # fmt: skip

    seen = await asyncio.to_thread(script)
    assert seen["first"].status == JobStatus.QUEUED  # type: ignore[attr-defined]
    assert seen["cancelled"].status == JobStatus.CANCELLED  # type: ignore[attr-defined]
    assert seen["final"].status == JobStatus.CANCELLED  # type: ignore[attr-defined]
    assert seen["listed"] == [seen["job"].id]  # type: ignore[attr-defined]
    portals = [t for t in threading.enumerate() if t.name == "empq-client"]
    assert not portals, "close() stops the client's thread"


def test_a_closed_client_says_so() -> None:
    client = Client("http://127.0.0.1:1")
    client.close()
    client.close()  # harmless
    with pytest.raises(EmpqError, match="closed"):
        client.get("j1")
