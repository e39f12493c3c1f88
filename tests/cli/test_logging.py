"""`empq.logging.configure`: the level and format a user picks with EMPQ_LOG_* are honoured."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from empq.config import CommonSettings
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
