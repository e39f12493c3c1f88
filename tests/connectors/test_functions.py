"""Function connectors: `@empq.connector` turns a def or async def into a working connector."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import empq
from empq.connectors.base import Connector, JobContext
from empq.connectors.functions import FunctionConnector
from empq.connectors.registry import load_connector_class
from empq.errors import ConnectorError
from tests.connectors import fn_targets
from tests.connectors.conftest import Progress, make_job

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello_worker.py"


def test_the_decorator_makes_a_connector_class_named_for_the_function() -> None:
    assert issubclass(fn_targets.greet, Connector)
    assert fn_targets.greet.name == "greet"
    assert fn_targets.greet.services == ("greet",)
    assert fn_targets.greet_in_child.name == "greet_in_child"
    assert "connector" in empq.__all__


def test_registry_loads_a_decorated_function_by_module_and_name() -> None:
    assert load_connector_class("tests.connectors.fn_targets:greet") is fn_targets.greet


def test_registry_finds_a_module_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_hello_mod.py").write_text(EXAMPLE.read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", ".")])
    cls = load_connector_class("my_hello_mod:hello")
    assert issubclass(cls, FunctionConnector)


def test_hello_world_example_is_at_most_eight_lines() -> None:
    assert len(EXAMPLE.read_text().splitlines()) <= 8


async def test_sync_function_gets_a_validated_payload_and_reports_progress() -> None:
    progress = Progress()
    job, _ = make_job({"name": "ada", "times": 2}, service="greet")
    result = await fn_targets.greet().process(job, progress)
    assert result["text"] == "hello ada hello ada"
    await asyncio.wait_for(progress.started.wait(), 5)
    assert progress.values == [50]
    assert progress.messages == ["greeting"]


async def test_payload_that_does_not_fit_fails_before_running_naming_the_field() -> None:
    job, _ = make_job({"times": "lots"}, service="greet")
    with pytest.raises(ConnectorError) as caught:
        await fn_targets.greet().process(job, Progress())
    assert caught.value.error_type == "invalid_payload"
    assert caught.value.retryable is False
    assert "name" in caught.value.message
    assert "times" in caught.value.message


class Size(BaseModel):
    width: int


async def test_an_annotated_first_parameter_is_the_payload_model() -> None:
    @empq.connector("size")
    async def size(payload: Size, progress: Any) -> Size:
        await progress(10)
        return payload

    job, _ = make_job({"width": 64}, service="size")
    assert await size().process(job, Progress()) == {"width": 64}
    bad, _ = make_job({"width": "wide"}, service="size")
    with pytest.raises(ConnectorError, match="width"):
        await size().process(bad, Progress())


async def test_blocking_sync_code_does_not_stall_the_event_loop() -> None:
    job, _ = make_job({"seconds": 1.0}, service="block")
    task = asyncio.create_task(fn_targets.block().process(job, Progress()))
    # While the function blocks its thread for a second, the loop keeps turning.
    ticks = 0
    started = time.monotonic()
    while not task.done():
        await asyncio.sleep(0.05)
        ticks += 1
    assert await task == {"blocked_for": 1.0}
    assert time.monotonic() - started >= 1.0
    assert ticks >= 10


async def test_cancelled_sync_function_stops_at_its_next_progress_call() -> None:
    stopped = threading.Event()
    seen = threading.Event()

    @empq.connector("loop")
    def spin(job: JobContext, progress: Any) -> dict[str, Any]:
        try:
            while True:
                progress(1)
                seen.set()
                time.sleep(0.01)
        except empq.JobCancelled:
            stopped.set()
            raise

    job, _ = make_job({}, service="loop")
    task = asyncio.create_task(spin().process(job, Progress()))
    assert await asyncio.to_thread(seen.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(stopped.wait, 5)


async def test_sync_function_can_save_artifacts_from_its_thread() -> None:
    @empq.connector("art")
    def art(job: JobContext, progress: Any) -> dict[str, Any]:
        url = job.artifacts.save_sync("out.txt", b"hi", "text/plain")  # type: ignore[attr-defined]
        return {"output_files": [url]}

    job, artifacts = make_job({}, service="art")
    assert await art().process(job, Progress()) == {"output_files": ["memory://out.txt"]}
    assert artifacts.files["out.txt"] == (b"hi", "text/plain")


async def test_process_mode_runs_in_a_child_process_and_reports_progress() -> None:
    progress = Progress()
    job, _ = make_job({"name": "bob"}, service="greet")
    result = await fn_targets.greet_in_child().process(job, progress)
    assert result["text"] == "hello bob"
    assert result["pid"] != os.getpid()
    await asyncio.wait_for(progress.started.wait(), 5)
    assert progress.messages == ["in the child"]


async def test_process_mode_passes_connector_errors_back() -> None:
    job, _ = make_job({}, service="refuse")
    with pytest.raises(ConnectorError) as caught:
        await fn_targets.refuse_in_child().process(job, Progress())
    assert caught.value.error_type == "service_rejected"
    assert caught.value.retryable is False


async def test_cancelling_a_process_mode_job_terminates_its_child() -> None:
    progress = Progress()
    job, _ = make_job({}, service="loop")
    task = asyncio.create_task(fn_targets.spin_in_child().process(job, progress))
    await asyncio.wait_for(progress.started.wait(), 15)
    child_pid = int(str(progress.messages[-1]).split()[-1])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)
