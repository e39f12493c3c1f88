"""Log output: the level and format a user picks with EMPQ_LOG_* are honoured, also in
`empq dev`'s merged output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from rich.console import Console

from empq.config import CommonSettings, HubSettings
from empq.dev import DevSupervisor
from empq.logging import configure


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_json_format_is_one_object_per_line_with_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPQ_LOG_FORMAT", "json")
    stream = io.StringIO()
    configure(CommonSettings(), stream=stream)
    logging.getLogger("empq.test").info("job done", extra={"job_id": "j-1"})
    record = json.loads(stream.getvalue().strip())
    assert record["level"] == "info"
    assert record["logger"] == "empq.test"
    assert record["message"] == "job done"
    assert record["job_id"] == "j-1"
    assert record["ts"].endswith("Z")


@pytest.mark.usefixtures("restore_root_logger")
def test_level_from_environment_filters_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPQ_LOG_LEVEL", "WARNING")
    stream = io.StringIO()
    configure(CommonSettings(), stream=stream)
    log = logging.getLogger("empq.test")
    log.info("hidden")
    log.warning("shown")
    assert "hidden" not in stream.getvalue()
    assert "WARNING empq.test: shown" in stream.getvalue()


@pytest.mark.usefixtures("restore_root_logger")
def test_configuring_twice_does_not_duplicate_lines() -> None:
    stream = io.StringIO()
    configure(level="info", stream=stream)
    configure(level="info", stream=stream)
    logging.getLogger("empq.test").info("once")
    assert stream.getvalue().count("once") == 1


def merged_output(log_format: str, lines: list[tuple[str, str]]) -> list[str]:
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, color_system=None)
    supervisor = DevSupervisor(HubSettings(log_format=log_format), console=console)
    for process, line in lines:
        supervisor.emit(process, line, "bold")
    return buffer.getvalue().splitlines()


def test_dev_prefixes_each_line_with_its_process() -> None:
    out = merged_output("console", [("hub", "started"), ("worker-1", "registered")])
    assert out == ["       hub | started", "  worker-1 | registered"]


def test_dev_json_output_stays_one_object_per_line() -> None:
    child_record = json.dumps({"level": "warning", "logger": "empq.worker", "message": "slow"})
    out = merged_output("json", [("worker-1", child_record), ("hub", "Traceback (most recent")])
    first, second = (json.loads(line) for line in out)
    assert first == {
        "level": "warning",
        "logger": "empq.worker",
        "message": "slow",
        "process": "worker-1",
    }
    assert second["process"] == "hub"
    assert second["message"] == "Traceback (most recent"
