"""The scripts in examples/ do what their docstrings promise, against a real hub and worker."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from empq.config import WorkerSettings
from empq.connectors.base import Connector, JobContext
from empq.errors import ConnectorError
from empq.sdk import AsyncClient
from empq.status import JobStatus
from empq.worker.runtime import run_worker
from tests.cli.support import Result
from tests.support.hub_fixtures import HubHandle

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def run_example(name: str, *args: str) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMPQ_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / f"{name}.py"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@asynccontextmanager
async def worker(
    hub: HubHandle, instances: list[Connector] | None = None, **settings: Any
) -> AsyncIterator[None]:
    """An in-process worker on this event loop, stopped (and awaited) at the end."""
    stop = asyncio.Event()
    config = WorkerSettings(hub_url=hub.ws_url, hub_http_url=hub.http_url, **settings)
    task = asyncio.create_task(run_worker(config, connectors=instances, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_custom_connector_reports_progress_and_refuses_bad_payloads() -> None:
    shout = load_example("custom_connector").ShoutConnector()
    reports: list[float] = []

    async def progress(percent: float, message: str | None = None, **_: Any) -> None:
        reports.append(percent)

    result = await shout.process(
        JobContext(id="j1", type="shout", payload={"text": "hi there"}), progress
    )
    assert result["text"] == "HI THERE"
    assert reports == [50, 100]
    with pytest.raises(ConnectorError) as caught:
        await shout.process(JobContext(id="j2", type="shout", payload={}), progress)
    assert caught.value.error_type == "invalid_payload"
    assert not caught.value.retryable


async def test_custom_connector_serves_jobs_in_a_worker(hub: HubHandle) -> None:
    shout_cls = load_example("custom_connector").ShoutConnector
    settings = WorkerSettings(hub_url=hub.ws_url, worker_id="shouter", connectors=[])
    async with (
        worker(hub, [shout_cls(settings)], worker_id="shouter", connectors=[]),
        AsyncClient(hub.http_url) as client,
    ):
        job = await client.submit(
            type="shout", payload={"text": "hello"}, requirements={"service_type": "shout"}
        )
        done = await client.wait(job.id, timeout=15)
    assert done.status == JobStatus.COMPLETED
    assert done.worker_id == "shouter"
    assert done.result is not None
    assert done.result["text"] == "HELLO"


async def test_submit_and_wait_example_prints_the_result(hub: HubHandle) -> None:
    async with worker(hub, simulation_duration=0.1):
        result = await run_example("submit_and_wait", "--hub", hub.http_url, "--duration", "0.2")
    assert result.code == 0, result.err
    assert "completed" in result.out
    assert "'simulated': True" in result.out


async def test_workflow_example_shows_inherited_priority(hub: HubHandle) -> None:
    result = await run_example("workflow_priority", "--hub", hub.http_url)
    assert result.code == 0, result.err
    order = [line.split(". ", 1)[1] for line in result.out.splitlines() if ". " in line]
    assert order[0].startswith("standalone, priority 95")
    assert [o.split(",")[0] for o in order[1:4]] == ["step 1", "step 2", "step 3"]
    assert order[4].startswith("standalone, priority 70")
    async with AsyncClient(hub.http_url) as client:
        left = await client.jobs(status=JobStatus.QUEUED)
    assert len(left) == 0, "the example cleans up after itself"
