"""The ComfyUI connector against a fake ComfyUI that reproduces SERVICES.md."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from empq.config import WorkerSettings
from empq.connectors.comfyui import ComfyUIConnector
from empq.errors import ConnectorError
from empq.redis_server import free_port
from tests.connectors.conftest import Progress, make_job
from tests.fakes.comfyui_server import FakeComfyUI, running_comfyui
from tests.fakes.serving import RunningServer


def graph(steps: int = 3, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    g: dict[str, Any] = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}},
        "2": {"class_type": "Sampler", "inputs": {"image": ["1", 0], "steps": steps}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t"}},
    }
    g.update(extra or {})
    return g


@pytest.fixture(scope="module")
async def _comfy_server() -> AsyncIterator[tuple[FakeComfyUI, RunningServer]]:
    async with running_comfyui() as pair:
        yield pair


@pytest.fixture
def comfy(
    _comfy_server: tuple[FakeComfyUI, RunningServer],
) -> tuple[FakeComfyUI, RunningServer]:
    """The module's fake ComfyUI, reset to a fresh state for this test."""
    _comfy_server[0].reset()
    return _comfy_server


@pytest.fixture
async def connector(comfy: tuple[FakeComfyUI, RunningServer]) -> AsyncIterator[ComfyUIConnector]:
    c = ComfyUIConnector(WorkerSettings(comfyui_url=comfy[1].url), history_poll=1.0)
    await c.start()
    yield c
    await c.close()


async def run(connector: ComfyUIConnector, payload: dict[str, Any], **kw: Any) -> Any:
    job, artifacts = make_job(payload, service="comfyui", **kw)
    progress = Progress()
    result = await connector.process(job, progress)
    return result, artifacts, progress


async def test_saved_images_become_artifacts_and_progress_only_rises(
    connector: ComfyUIConnector,
) -> None:
    result, artifacts, progress = await run(connector, {"workflow": graph(steps=5)})
    assert result["prompt_id"]
    assert len(result["output_files"]) == 1
    (name,) = artifacts.files
    data, ctype = artifacts.files[name]
    assert data.startswith(b"\x89PNG")
    assert ctype == "image/png"
    assert result["outputs"]["3"]["images"][0]["type"] == "output"
    assert progress.values == sorted(progress.values)
    assert len(set(progress.values)) == len(progress.values)
    assert progress.values
    assert max(progress.values) < 100


async def test_the_models_a_workflow_loaded_are_reported_warm_most_recent_first(
    connector: ComfyUIConnector,
) -> None:
    assert connector.models_loaded() == {}
    loaders = {
        "10": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "11": {"class_type": "LoraLoader", "inputs": {"lora_name": "ink.safetensors"}},
        "12": {"class_type": "VAELoader", "inputs": {"vae_name": "vae.pt"}},
    }
    await run(connector, {"workflow": graph(extra=loaders)})
    assert connector.models_loaded() == {
        "comfyui": ["sd15.safetensors", "ink.safetensors", "vae.pt"]
    }
    other = {"10": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "xl"}}}
    await run(connector, {"workflow": graph(extra=other)})
    assert connector.models_loaded()["comfyui"][:2] == ["xl", "sd15.safetensors"]
    # A failed workflow leaves the list as it was.
    failing = graph(
        extra={"20": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "never"}}}
    )
    failing["2"] = {"class_type": "FailNode", "inputs": {"image": ["1", 0]}}
    with pytest.raises(ConnectorError):
        await run(connector, {"workflow": failing})
    assert "never" not in connector.models_loaded()["comfyui"]


async def test_preview_only_images_are_not_uploaded(connector: ComfyUIConnector) -> None:
    g = graph()
    g["3"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    result, artifacts, _ = await run(connector, {"workflow": g})
    assert result["output_files"] == []
    assert artifacts.files == {}


async def test_fully_cached_resubmit_still_returns_outputs(connector: ComfyUIConnector) -> None:
    first, _, _ = await run(connector, {"workflow": graph()})
    second, artifacts, _ = await run(connector, {"workflow": graph()})
    assert second["prompt_id"] != first["prompt_id"]
    assert len(second["output_files"]) == 1
    assert len(artifacts.files) == 1


async def test_200_with_node_errors_fails_and_removes_the_prompt(
    comfy: tuple[FakeComfyUI, RunningServer], connector: ComfyUIConnector
) -> None:
    bad = {"4": {"class_type": "Sampler", "inputs": {"image": ["1", 0], "steps": 0}}}
    bad["5"] = {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "x"}}
    with pytest.raises(ConnectorError) as info:
        await run(connector, {"workflow": graph(extra=bad)})
    assert info.value.error_type == "invalid_payload"
    assert not info.value.retryable
    assert "4" in info.value.details
    assert "node 4 (Sampler): value smaller than min: steps" in info.value.message
    assert comfy[0].deleted, "the half-valid prompt must be taken off ComfyUI's queue"


async def test_validation_error_names_the_node_its_class_and_the_input(
    connector: ComfyUIConnector,
) -> None:
    g = graph()
    g["5"] = {"class_type": "EmptyImage", "inputs": {"width": 8}}
    g["2"]["inputs"]["image"] = ["5", 0]
    with pytest.raises(ConnectorError) as info:
        await run(connector, {"workflow": g})
    assert info.value.error_type == "invalid_payload"
    assert "node 5 (EmptyImage): required input missing: height" in info.value.message


@pytest.mark.parametrize(
    ("workflow", "comfy_type"),
    [
        ({"1": {"class_type": "NoSuchNode", "inputs": {}}}, "invalid_prompt"),
        (
            {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}},
            "prompt_no_outputs",
        ),
        (graph(steps=0), "prompt_outputs_failed_validation"),
        (graph(steps=10**6), "prompt_outputs_failed_validation"),
    ],
)
async def test_400_validation_errors_fail_without_retry(
    connector: ComfyUIConnector, workflow: dict[str, Any], comfy_type: str
) -> None:
    with pytest.raises(ConnectorError) as info:
        await run(connector, {"workflow": workflow})
    assert info.value.error_type == "invalid_payload"
    assert not info.value.retryable
    assert info.value.details["error"]["type"] == comfy_type


@pytest.mark.parametrize("payload", [{}, {"workflow": {}}, {"workflow": {"1": {"inputs": {}}}}])
async def test_unusable_payload_fails_before_calling_comfyui(
    comfy: tuple[FakeComfyUI, RunningServer], connector: ComfyUIConnector, payload: dict[str, Any]
) -> None:
    with pytest.raises(ConnectorError) as info:
        await run(connector, payload)
    assert info.value.error_type == "invalid_payload"
    assert not info.value.retryable
    assert comfy[0].counter == 0


async def test_unknown_node_class_is_refused_once_object_info_is_known(
    comfy: tuple[FakeComfyUI, RunningServer], connector: ComfyUIConnector
) -> None:
    caps = await connector.capabilities()
    assert caps.services == ["comfyui"]
    with pytest.raises(ConnectorError) as info:
        await run(connector, {"workflow": {"1": {"class_type": "Nope", "inputs": {}}}})
    assert info.value.error_type == "invalid_payload"
    assert comfy[0].counter == 0


async def test_execution_error_fails_with_the_node_named(connector: ComfyUIConnector) -> None:
    g = graph()
    g["2"] = {"class_type": "FailNode", "inputs": {"image": ["1", 0]}}
    with pytest.raises(ConnectorError) as info:
        await run(connector, {"workflow": g})
    err = info.value
    assert err.error_type == "execution_error"
    assert not err.retryable
    assert err.details["node_type"] == "FailNode"
    assert "boom" in err.message


async def test_cancel_interrupts_the_running_prompt(
    comfy: tuple[FakeComfyUI, RunningServer], connector: ComfyUIConnector
) -> None:
    job, _ = make_job({"workflow": graph(steps=5000)}, service="comfyui")
    progress = Progress()
    task = asyncio.create_task(connector.process(job, progress))
    await asyncio.wait_for(progress.started.wait(), 5)
    await connector.cancel(job)
    with pytest.raises(ConnectorError) as info:
        await asyncio.wait_for(task, 5)
    assert info.value.error_type == "interrupted"
    assert any(isinstance(i, dict) and i.get("prompt_id") for i in comfy[0].interrupts)


async def test_each_concurrent_job_sees_only_its_own_progress(
    comfy: tuple[FakeComfyUI, RunningServer], connector: ComfyUIConnector
) -> None:
    (r1, _, p1), (r2, _, p2) = await asyncio.gather(
        run(connector, {"workflow": graph(steps=4)}),
        run(connector, {"workflow": graph(steps=30)}),
    )
    assert r1["prompt_id"] != r2["prompt_id"]
    for p in (p1, p2):
        assert p.values == sorted(p.values)
        assert len(set(p.values)) == len(p.values)


async def test_dropped_socket_is_reopened_and_the_job_completes(
    comfy: tuple[FakeComfyUI, RunningServer], connector: ComfyUIConnector
) -> None:
    job, artifacts = make_job({"workflow": graph(steps=200)}, service="comfyui")
    progress = Progress()
    task = asyncio.create_task(connector.process(job, progress))
    await asyncio.wait_for(progress.started.wait(), 5)
    await comfy[0].drop_sockets()
    result = await asyncio.wait_for(task, 10)
    assert len(result["output_files"]) == 1
    assert artifacts.files


async def test_comfyui_down_at_start_is_retryable() -> None:
    c = ComfyUIConnector(WorkerSettings(comfyui_url=f"http://127.0.0.1:{free_port()}"))
    job, _ = make_job({"workflow": graph()}, service="comfyui")
    with pytest.raises(ConnectorError) as info:
        await c.process(job, Progress())
    assert info.value.error_type == "service_unavailable"
    assert info.value.retryable
    assert not (await c.health()).healthy
    await c.close()


async def test_comfyui_dying_mid_job_is_retryable() -> None:
    async with running_comfyui() as (_, server):
        c = ComfyUIConnector(WorkerSettings(comfyui_url=server.url), reconnect_attempts=2)
        job, _ = make_job({"workflow": graph(steps=100_000 // 20)}, service="comfyui")
        progress = Progress()
        task = asyncio.create_task(c.process(job, progress))
        await asyncio.wait_for(progress.started.wait(), 5)
        await server.stop()
        with pytest.raises(ConnectorError) as info:
            await asyncio.wait_for(task, 10)
        assert info.value.error_type == "service_unavailable"
        assert info.value.retryable
        await c.close()


async def test_job_timeout_interrupts_and_is_retryable(
    comfy: tuple[FakeComfyUI, RunningServer], connector: ComfyUIConnector
) -> None:
    with pytest.raises(ConnectorError) as info:
        await run(connector, {"workflow": graph(steps=5000)}, timeout_minutes=0.2 / 60)
    assert info.value.error_type == "timeout"
    assert info.value.retryable
    assert comfy[0].interrupts


async def test_health_reports_devices(connector: ComfyUIConnector) -> None:
    health = await connector.health()
    assert health.healthy
    assert health.info["devices"][0]["name"] == "cpu"


async def test_fake_follows_comfyui_gotchas(comfy: tuple[FakeComfyUI, RunningServer]) -> None:
    async with httpx.AsyncClient(base_url=comfy[1].url) as http:
        assert (await http.get("/history/unknown")).json() == {}
        assert (await http.post("/interrupt")).status_code == 200
        assert (await http.post("/prompt", content=b"{nope")).status_code == 500
        assert (await http.get("/view", params={"filename": "../x.png"})).status_code == 400
        assert (await http.get("/view", params={"filename": "x.png"})).status_code == 404


async def test_interrupt_lands_between_nodes_not_inside_a_long_one(
    comfy: tuple[FakeComfyUI, RunningServer], connector: ComfyUIConnector
) -> None:
    g = graph(steps=5)
    g["2"] = {"class_type": "SlowNode", "inputs": {"image": ["1", 0], "seconds": 0.3}}
    g["4"] = {"class_type": "Sampler", "inputs": {"image": ["2", 0], "steps": 5}}
    g["3"]["inputs"]["images"] = ["4", 0]
    job, _ = make_job({"workflow": g}, service="comfyui")
    progress = Progress()
    task = asyncio.create_task(connector.process(job, progress))
    await asyncio.wait_for(progress.started.wait(), 5)  # node 1 done, SlowNode running
    await connector.cancel(job)
    with pytest.raises(ConnectorError) as info:
        await asyncio.wait_for(task, 5)
    assert info.value.error_type == "interrupted"
    assert info.value.details["node_id"] == "4", "the slow node ran to its end first"
