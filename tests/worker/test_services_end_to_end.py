"""Hub → worker → real-protocol service → artifact store → client, end to end."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from empq.config import WorkerSettings
from empq.connectors.a1111 import A1111Connector
from empq.connectors.comfyui import ComfyUIConnector
from empq.redis_server import free_port
from tests.cli.support import run_empq
from tests.fakes.a1111_server import PNG, running_a1111
from tests.fakes.comfyui_graph import CHECKPOINTS
from tests.fakes.comfyui_server import FakeComfyUI, running_comfyui
from tests.fakes.serving import RunningServer
from tests.support.hub_fixtures import HubHandle
from tests.worker.conftest import running_worker, submit, wait_for_job

WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}},
    "2": {"class_type": "Sampler", "inputs": {"image": ["1", 0], "steps": 20}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "e2e"}},
}


async def test_comfyui_job_outputs_are_fetchable_from_the_hub(hub: HubHandle) -> None:
    async with running_comfyui() as (_, comfy):
        connector = ComfyUIConnector(WorkerSettings(comfyui_url=comfy.url))
        async with (
            running_worker(hub.ws_url, connectors=[connector], services=["comfyui"]),
            hub.client() as client,
        ):
            job_id = await submit(
                client,
                type="text_to_image",
                payload={"workflow": WORKFLOW},
                requirements={"service_type": "comfyui"},
            )
            done = await wait_for_job(client, job_id)
            assert done["status"] == "completed", done
            (url,) = done["result"]["output_files"]
            image = await client.get(url)
            assert image.content.startswith(b"\x89PNG")
            assert image.headers["content-type"] == "image/png"
            assert "3" in done["result"]["outputs"]


async def test_comfyui_validation_error_fails_the_job_without_retry(hub: HubHandle) -> None:
    async with running_comfyui() as (_, comfy):
        connector = ComfyUIConnector(WorkerSettings(comfyui_url=comfy.url))
        async with (
            running_worker(hub.ws_url, connectors=[connector], services=["comfyui"]),
            hub.client() as client,
        ):
            bad = {"1": {"class_type": "Missing", "inputs": {}}}
            job_id = await submit(
                client, payload={"workflow": bad}, requirements={"service_type": "comfyui"}
            )
            done = await wait_for_job(client, job_id, "failed")
            assert done["error_details"]["error_type"] == "invalid_payload"
            assert done["attempts"] == 1


async def test_comfyui_validation_error_says_which_node_and_input_everywhere(
    hub: HubHandle, caplog: pytest.LogCaptureFixture
) -> None:
    missing = {**WORKFLOW, "5": {"class_type": "EmptyImage", "inputs": {"width": 8}}}
    missing["2"] = {"class_type": "Sampler", "inputs": {"image": ["5", 0], "steps": 20}}
    wanted = "node 5 (EmptyImage): required input missing: height"
    async with running_comfyui() as (_, comfy):
        connector = ComfyUIConnector(WorkerSettings(comfyui_url=comfy.url))
        async with (
            running_worker(hub.ws_url, connectors=[connector], services=["comfyui"]),
            hub.client() as client,
        ):
            with caplog.at_level(logging.INFO, logger="empq.worker"):
                job_id = await submit(
                    client, payload={"workflow": missing}, requirements={"service_type": "comfyui"}
                )
                done = await wait_for_job(client, job_id, "failed")
    assert wanted in done["error"]
    # The worker's log says it at INFO, with the job, the error type and no retry.
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(
        job_id in m and "invalid_payload" in m and "will not retry" in m and wanted in m
        for m in logged
    ), logged
    shown = await asyncio.to_thread(run_empq, "status", job_id, "--hub", hub.http_url)
    assert shown.code == 0, shown.err
    assert wanted in " ".join(shown.out.split())


async def test_a1111_images_are_stored_as_artifacts_not_base64(hub: HubHandle) -> None:
    async with running_a1111() as (_, a1111):
        connector = A1111Connector(WorkerSettings(a1111_url=a1111.url), poll_interval=0.01)
        async with (
            running_worker(hub.ws_url, connectors=[connector], services=["a1111"]),
            hub.client() as client,
        ):
            job_id = await submit(
                client,
                payload={"prompt": "a cat", "steps": 10},
                requirements={"service_type": "a1111"},
            )
            done = await wait_for_job(client, job_id)
            assert done["status"] == "completed", done
            (url,) = done["result"]["output_files"]
            assert (await client.get(url)).content == PNG + b"\x00"
            assert len(str(done["result"])) < 2000, "no image bytes inline in the result"


async def test_status_port_serves_health_ready_metrics_and_page(hub: HubHandle) -> None:
    port = free_port()
    async with (
        running_worker(hub.ws_url, http_port=port) as worker,
        hub.client() as client,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as status,
    ):
        await wait_for_job(client, await submit(client))
        assert (await status.get("/health")).json()["worker_id"] == worker.worker_id
        ready = await status.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["connected"] is True
        metrics = (await status.get("/metrics")).text
        assert 'empq_worker_jobs_total{outcome="completed"} 1.0' in metrics
        page = (await status.get("/")).text
        assert worker.worker_id in page
        assert "completed" in page


async def test_a_comfyui_that_comes_up_later_adds_its_models(hub: HubHandle) -> None:
    port = free_port()
    connector = ComfyUIConnector(WorkerSettings(comfyui_url=f"http://127.0.0.1:{port}"))
    async with (
        running_worker(
            hub.ws_url, connectors=[connector], services=["comfyui"], heartbeat_interval=0.05
        ) as worker,
        hub.client() as client,
    ):
        assert worker.capabilities.models == {}, "ComfyUI is down: no models yet"
        before = worker.registrations
        fake = FakeComfyUI()
        server = RunningServer(fake.app(), port=port)
        await server.start()
        try:
            job_id = await submit(
                client,
                payload={"workflow": WORKFLOW},
                requirements={"service_type": "comfyui", "models": ["fake_sdxl.safetensors"]},
            )
            runner = asyncio.create_task(fake.run_forever())
            try:
                done = await wait_for_job(client, job_id)
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
            assert done["status"] == "completed", done
            assert worker.capabilities.models["comfyui"] == CHECKPOINTS
            assert worker.registrations == before, "updated in place, no re-registration"
        finally:
            await server.stop()
