"""The A1111 connector against a fake stable-diffusion-webui API."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from empq.config import WorkerSettings
from empq.connectors.a1111 import A1111Connector
from empq.errors import ConnectorError
from empq.redis_server import free_port
from tests.connectors.conftest import Progress, make_job
from tests.fakes.a1111_server import PNG, FakeA1111, running_a1111
from tests.fakes.serving import RunningServer


@pytest.fixture(scope="module")
async def _a1111_server() -> AsyncIterator[tuple[FakeA1111, RunningServer]]:
    async with running_a1111() as pair:
        yield pair


@pytest.fixture
def a1111(_a1111_server: tuple[FakeA1111, RunningServer]) -> tuple[FakeA1111, RunningServer]:
    """The module's fake A1111, reset to a fresh state for this test."""
    _a1111_server[0].reset()
    return _a1111_server


@pytest.fixture
async def connector(a1111: tuple[FakeA1111, RunningServer]) -> AsyncIterator[A1111Connector]:
    c = A1111Connector(WorkerSettings(a1111_url=a1111[1].url), poll_interval=0.01)
    await c.start()
    yield c
    await c.close()


async def run(connector: A1111Connector, payload: dict[str, Any], **kw: Any) -> Any:
    job, artifacts = make_job(payload, service="a1111", **kw)
    progress = Progress()
    return await connector.process(job, progress), artifacts, progress


async def test_txt2img_uploads_images_and_reports_progress_while_generating(
    a1111: tuple[FakeA1111, RunningServer], connector: A1111Connector
) -> None:
    result, artifacts, progress = await run(
        connector, {"prompt": "a cat", "steps": 60, "batch_size": 2, "seed": 7}
    )
    assert len(result["output_files"]) == 2
    assert [d for d, _ in artifacts.files.values()] == [PNG + b"\x00", PNG + b"\x01"]
    assert result["parameters"]["prompt"] == "a cat"
    assert result["info"]["seed"] == 7, "info arrives as a JSON string and is decoded"
    assert progress.values, "progress must be polled while the blocking call runs"
    assert progress.values == sorted(progress.values)
    assert max(progress.values) < 100
    assert "endpoint" not in a1111[0].requests[0]
    assert "base64" not in str(result)


async def test_img2img_sends_init_images(
    a1111: tuple[FakeA1111, RunningServer], connector: A1111Connector
) -> None:
    init = base64.b64encode(PNG).decode()
    result, _, _ = await run(connector, {"endpoint": "img2img", "init_images": [init], "steps": 2})
    assert len(result["output_files"]) == 1
    assert a1111[0].requests[0]["init_images"] == [init]


@pytest.mark.parametrize(
    "payload",
    [{"endpoint": "upscale"}, {"endpoint": "img2img"}, {"endpoint": "img2img", "init_images": []}],
)
async def test_payload_the_connector_cannot_use_fails_at_once(
    a1111: tuple[FakeA1111, RunningServer], connector: A1111Connector, payload: dict[str, Any]
) -> None:
    with pytest.raises(ConnectorError) as info:
        await run(connector, payload)
    assert info.value.error_type == "invalid_payload"
    assert not info.value.retryable
    assert a1111[0].requests == []


async def test_a1111_422_is_invalid_payload_naming_the_field(connector: A1111Connector) -> None:
    with pytest.raises(ConnectorError) as info:
        await run(connector, {"prompt": "x", "steps": 0})
    assert info.value.error_type == "invalid_payload"
    assert not info.value.retryable
    assert info.value.details["detail"][0]["loc"] == ["body", "steps"]
    assert "A1111 refused the parameters: steps: must be an integer in" in info.value.message


async def test_a1111_500_is_retryable_service_error(
    a1111: tuple[FakeA1111, RunningServer], connector: A1111Connector
) -> None:
    a1111[0].fail_next = 1
    with pytest.raises(ConnectorError) as info:
        await run(connector, {"prompt": "x", "steps": 2})
    assert info.value.error_type == "service_error"
    assert info.value.retryable


async def test_cancel_interrupts_and_the_blocking_call_returns_early(
    a1111: tuple[FakeA1111, RunningServer], connector: A1111Connector
) -> None:
    job, _ = make_job({"prompt": "x", "steps": 150}, service="a1111")
    progress = Progress()
    a1111[0].hold = asyncio.Event()
    task = asyncio.create_task(connector.process(job, progress))
    await asyncio.wait_for(progress.started.wait(), 5)
    await connector.cancel(job)
    a1111[0].hold.set()
    result = await asyncio.wait_for(task, 5)
    assert a1111[0].interrupts == 1
    assert result["info"]["steps_done"] < 150


async def test_jobs_run_one_at_a_time_so_progress_is_never_mixed(
    a1111: tuple[FakeA1111, RunningServer], connector: A1111Connector
) -> None:
    (_, _, p1), (_, _, p2) = await asyncio.gather(
        run(connector, {"prompt": "a", "steps": 40}), run(connector, {"prompt": "b", "steps": 40})
    )
    for p in (p1, p2):
        assert p.values == sorted(p.values)


async def test_timeout_interrupts_and_is_retryable(
    a1111: tuple[FakeA1111, RunningServer], connector: A1111Connector
) -> None:
    a1111[0].hold = asyncio.Event()
    with pytest.raises(ConnectorError) as info:
        await run(connector, {"prompt": "x", "steps": 5}, timeout_minutes=0.1 / 60)
    a1111[0].hold.set()
    assert info.value.error_type == "timeout"
    assert info.value.retryable
    assert a1111[0].interrupts == 1


async def test_a1111_down_is_retryable_and_unhealthy() -> None:
    c = A1111Connector(WorkerSettings(a1111_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(ConnectorError) as info:
        await run(c, {"prompt": "x"})
    assert info.value.error_type == "service_unavailable"
    assert info.value.retryable
    assert not (await c.health()).healthy
    await c.close()


async def test_a1111_dying_mid_job_is_retryable() -> None:
    async with running_a1111() as (fake, server):
        c = A1111Connector(WorkerSettings(a1111_url=server.url), poll_interval=0.01)
        fake.hold = asyncio.Event()
        job, _ = make_job({"prompt": "x", "steps": 5}, service="a1111")
        progress = Progress()
        task = asyncio.create_task(c.process(job, progress))
        await asyncio.wait_for(progress.started.wait(), 5)
        await server.stop()
        with pytest.raises(ConnectorError) as info:
            await asyncio.wait_for(task, 10)
        assert info.value.retryable
        assert info.value.error_type in ("service_unavailable", "service_error")
        await c.close()


async def test_health_and_models_are_advertised(connector: A1111Connector) -> None:
    health = await connector.health()
    assert health.healthy
    caps = await connector.capabilities()
    assert caps.services == ["a1111"]
    assert caps.models == {"a1111": ["sd15", "sdxl"]}


async def test_the_loaded_checkpoint_is_reported_warm_by_model_name(
    connector: A1111Connector,
) -> None:
    await connector.capabilities()  # learns each title's model_name
    await run(connector, {"prompt": "a cat", "steps": 2})
    # /sdapi/v1/options says "sd15.safetensors [abc123]": listed as its model_name.
    assert connector.models_loaded() == {"a1111": ["sd15"]}
    override = {"sd_model_checkpoint": "sdxl.safetensors [def456]"}
    await run(connector, {"prompt": "a cat", "steps": 2, "override_settings": override})
    assert connector.models_loaded() == {"a1111": ["sdxl", "sd15"]}
