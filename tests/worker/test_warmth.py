"""A connector's warm models reach the hub, and the hub routes jobs by them."""

from __future__ import annotations

from typing import Any

from empq.connectors.base import Connector, JobContext, ProgressReporter
from tests.support.hub_fixtures import HubHandle
from tests.worker.conftest import running_worker, submit, wait_for_job


class WarmConnector(Connector):
    """Loads `payload.model` (a custom connector using the base's warmth API)."""

    name = "warm"
    services = ("simulation",)

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        self.note_models("simulation", [job.payload["model"]])
        return {"model": job.payload["model"]}


async def test_warm_models_are_reported_before_the_outcome(hub: HubHandle) -> None:
    async with (
        running_worker(hub.ws_url, connectors=[WarmConnector()]) as worker,
        hub.client() as client,
    ):
        for model in ("m1", "m2"):
            job_id = await submit(client, payload={"model": model})
            assert (await wait_for_job(client, job_id))["status"] == "completed"
        # The worker_status with the new warmth went out before complete_job.
        info = (await client.get(f"/api/workers/{worker.worker_id}")).json()
        assert info["models_loaded"] == {"simulation": ["m2", "m1"]}
        assert worker.registration().models_loaded == {"simulation": ["m2", "m1"]}
