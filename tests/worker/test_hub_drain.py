"""`empq worker` drained from the hub: it finishes its job and claims no more."""

from __future__ import annotations

from tests.support.hub_fixtures import HubHandle
from tests.worker.conftest import GateConnector, running_worker, submit, wait_for_job


async def test_a_worker_drained_by_the_hub_finishes_its_job_and_takes_no_more(
    hub: HubHandle,
) -> None:
    gate = GateConnector()
    async with (
        running_worker(hub.ws_url, connectors=[gate]) as worker,
        hub.client() as client,
    ):
        first = await submit(client)
        await gate.wait_active(1)
        second = await submit(client)
        r = await client.post(f"/api/workers/{worker.worker_id}/drain")
        assert r.status_code == 200
        gate.gate.set()
        assert (await wait_for_job(client, first))["status"] == "completed"
        # The hub sent `drain` before the first job's ack: once that is answered, the
        # worker has read the drain too.
        assert await worker.link.wait_settled(5.0)
        assert worker.draining
        assert not worker.ready()
        assert (await client.get(f"/api/jobs/{second}")).json()["status"] == "queued"
        assert gate.started == [first]
