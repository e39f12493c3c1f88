"""Worker behaviour when things are wrong: refused tokens, bad settings, broken connectors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from empq.config import WorkerSettings
from empq.connectors.base import Connector, ConnectorHealth, JobContext, ProgressReporter
from empq.errors import AuthError
from empq.models import WorkerCapabilities
from empq.worker.__main__ import main
from empq.worker.runtime import Worker
from tests.support.hub_fixtures import HubHandle
from tests.worker.conftest import WAIT, running_worker, submit, wait_for_job, worker_settings


class BrokenConnector(Connector):
    """Crashes in `process` and in `health`, returns a non-JSON result when asked."""

    name = "broken"
    services = ("simulation",)

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        if job.payload.get("mode") == "not-json":
            return {"value": object()}
        raise KeyError("bug in the connector")

    async def health(self) -> ConnectorHealth:
        raise RuntimeError("health check bug")


async def test_a_refused_worker_token_stops_the_worker_with_auth_error(
    hub_factory: Callable[..., AbstractAsyncContextManager[HubHandle]],
) -> None:
    async with hub_factory(worker_tokens=["right"]) as hub:
        settings = worker_settings(hub.ws_url, worker_token="wrong")
        worker = Worker(
            settings, capabilities=WorkerCapabilities(services=["simulation"]), stop=asyncio.Event()
        )
        with pytest.raises(AuthError):
            async with asyncio.timeout(WAIT):
                await worker.run()


async def test_a_good_worker_token_is_accepted(
    hub_factory: Callable[..., AbstractAsyncContextManager[HubHandle]],
) -> None:
    async with (
        hub_factory(worker_tokens=["right"]) as hub,
        hub.client() as client,
        running_worker(hub.ws_url, worker_token="right"),
    ):
        job_id = await submit(client)
        assert (await wait_for_job(client, job_id))["status"] == "completed"


def test_bad_settings_exit_2_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EMPQ_CONCURRENT_JOBS", "0")
    assert main() == 2
    assert "concurrent_jobs" in capsys.readouterr().err


async def test_connector_bugs_fail_the_job_but_not_the_worker(hub: HubHandle) -> None:
    async with (
        running_worker(hub.ws_url, connectors=[BrokenConnector()], heartbeat_interval=0.05) as w,
        hub.client() as client,
    ):
        crashed = await wait_for_job(client, await submit(client, max_retries=0), "failed")
        assert crashed["error_details"]["error_type"] == "connector_crashed"
        assert "bug in the connector" in crashed["error"]
        odd = await wait_for_job(
            client, await submit(client, payload={"mode": "not-json"}, max_retries=0), "failed"
        )
        assert odd["error_details"]["error_type"] == "invalid_result"
        assert w.link.connected
        assert w.connector_status["broken"]["healthy"] is False


def test_worker_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPQ_CONNECTORS", "simulation,comfyui")
    monkeypatch.setenv("EMPQ_HTTP_PORT", "9100")
    monkeypatch.setenv("EMPQ_SHUTDOWN_GRACE", "7")
    settings = WorkerSettings()
    assert settings.connectors == ["simulation", "comfyui"]
    assert settings.http_port == 9100
    assert settings.shutdown_grace == 7
