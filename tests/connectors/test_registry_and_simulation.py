"""Loading connectors by name or `module:Class`, and the simulation connector's knobs."""

from __future__ import annotations

from typing import Any

import pytest

from empq.config import WorkerSettings
from empq.connectors.a1111 import A1111Connector
from empq.connectors.base import Connector, JobContext, ProgressReporter
from empq.connectors.registry import create_connectors, load_connector_class
from empq.connectors.simulation import SimulationConnector
from empq.errors import ConnectorError, EmpqError
from tests.connectors.conftest import Progress, make_job


class EchoConnector(Connector):
    """A third-party connector as a user would write one."""

    name = "echo"
    services = ("echo",)

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        await progress(100, "done")
        return {"echo": job.payload}


@pytest.mark.parametrize(
    ("name", "cls_name"),
    [
        ("simulation", "SimulationConnector"),
        ("comfyui", "ComfyUIConnector"),
        ("a1111", "A1111Connector"),
        ("rest_sync", "RestSyncConnector"),
        ("rest_async", "RestAsyncConnector"),
        ("websocket", "WebSocketConnector"),
    ],
)
def test_builtin_connectors_load_by_entry_point_name(name: str, cls_name: str) -> None:
    cls = load_connector_class(name)
    assert cls.__name__ == cls_name
    assert cls.name == name


def test_custom_connector_loads_as_module_colon_class() -> None:
    spec = f"{__name__}:EchoConnector"
    (connector,) = create_connectors([spec], WorkerSettings(a1111_url="http://a:1"))
    assert isinstance(connector, EchoConnector)
    assert connector.settings.a1111_url == "http://a:1"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("nope", "unknown connector 'nope'"),
        ("no.such.module:X", "cannot import"),
        (f"{__name__}:Missing", "has no 'Missing'"),
        (f"{__name__}:Progress", "not a subclass of empq.Connector"),
    ],
)
def test_bad_connector_names_say_what_is_wrong(spec: str, words: str) -> None:
    with pytest.raises(EmpqError, match=words):
        load_connector_class(spec)


def test_settings_list_builds_every_named_connector() -> None:
    settings = WorkerSettings(connectors="simulation, a1111")
    built = create_connectors(settings.connectors, settings)
    assert [type(c) for c in built] == [SimulationConnector, A1111Connector]


async def test_simulation_reports_each_step_then_returns_the_contract_result() -> None:
    sim = SimulationConnector(WorkerSettings(simulation_duration=0.02, simulation_steps=4))
    job, _ = make_job({}, service="simulation")
    progress = Progress()
    assert await sim.process(job, progress) == {
        "simulated": True,
        "steps": 4,
        "output_files": [],
    }
    assert progress.values == [25, 50, 75, 100]


async def test_simulation_payload_overrides_settings_and_fail_is_retryable() -> None:
    sim = SimulationConnector(WorkerSettings(simulation_duration=100, simulation_steps=10))
    job, _ = make_job({"duration": 0, "steps": 2}, service="simulation")
    assert (await sim.process(job, Progress()))["steps"] == 2
    failing, _ = make_job({"duration": 0, "fail": True}, service="simulation")
    with pytest.raises(ConnectorError) as info:
        await sim.process(failing, Progress())
    assert info.value.retryable
    assert info.value.error_type == "simulated_failure"


async def test_simulation_failure_rate_one_always_fails() -> None:
    sim = SimulationConnector(WorkerSettings(simulation_duration=0, simulation_failure_rate=1.0))
    job, _ = make_job({}, service="simulation")
    with pytest.raises(ConnectorError):
        await sim.process(job, Progress())


@pytest.mark.parametrize("payload", [{"duration": -1}, {"steps": 0}, {"fail": "maybe"}])
async def test_simulation_bad_payload_is_invalid_payload(payload: dict[str, Any]) -> None:
    job, _ = make_job(payload, service="simulation")
    with pytest.raises(ConnectorError) as info:
        await SimulationConnector(WorkerSettings()).process(job, Progress())
    assert info.value.error_type == "invalid_payload"
    assert not info.value.retryable
    assert info.value.details[0]["field"] in ("duration", "steps", "fail")
